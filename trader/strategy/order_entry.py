"""Backtrader's order entry as both futures brokers (backtest and live) implement it.

A strategy's ``buy``/``sell`` reach the broker with Backtrader's full signature; extra keyword arguments
(``reduce_only``, ``close_position``, ``tag``) become the order's info, which each broker maps to exchange semantics.
One implementation keeps the backtest and the live broker from drifting apart on what a strategy may send.
"""

from __future__ import annotations

import backtrader as bt


class OrderEntryMixin:
    """Put before ``bt.BrokerBase`` in the bases; the broker supplies ``submit(order, oco=None)``."""

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
