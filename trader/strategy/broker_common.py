"""What both futures brokers (backtest and live) share: Backtrader's order entry and the cross-margin available
balance. One implementation keeps them from drifting apart on what a strategy may send and see.

A strategy's ``buy``/``sell`` reach the broker with Backtrader's full signature; extra keyword arguments
(``reduce_only``, ``close_position``, ``tag``) become the order's info, which each broker maps to exchange semantics.
"""

from __future__ import annotations

import backtrader as bt


class FuturesBrokerMixin:
    """Put before ``bt.BrokerBase`` in the bases. The broker supplies ``submit(order, oco=None)``, ``wallet`` and
    ``_marks() -> (Σ unrealized PnL, Σ position initial margin)`` at current marks."""

    wallet: float

    def available_balance(self) -> float:
        upnl, im = self._marks()  # type: ignore[attr-defined]
        return max(0.0, self.wallet + upnl - im)

    def getcash(self) -> float:
        return self.available_balance()

    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
            trailamount=None, trailpercent=None, parent=None, transmit=True, histnotify=False,
            _checksubmit=True, **kwargs):  # noqa: ANN001, ANN201 - Backtrader's signature
        order = bt.BuyOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit, exectype=exectype,
                            valid=valid, tradeid=tradeid, trailamount=trailamount, trailpercent=trailpercent,
                            parent=parent, transmit=transmit, histnotify=histnotify)
        order.addinfo(**kwargs)
        return self.submit(order, oco=oco)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
             trailamount=None, trailpercent=None, parent=None, transmit=True, histnotify=False,
             _checksubmit=True, **kwargs):  # noqa: ANN001, ANN201 - Backtrader's signature
        order = bt.SellOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit, exectype=exectype,
                             valid=valid, tradeid=tradeid, trailamount=trailamount, trailpercent=trailpercent,
                             parent=parent, transmit=transmit, histnotify=histnotify)
        order.addinfo(**kwargs)
        return self.submit(order, oco=oco)
