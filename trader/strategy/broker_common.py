"""What both futures brokers (backtest and live) share: Backtrader's order entry and the cross-margin available
balance. One implementation keeps them from drifting apart on what a strategy may send and see.

A strategy's ``buy``/``sell`` reach the broker with Backtrader's full signature; extra keyword arguments
(``reduce_only``, ``close_position``, ``tag``) become the order's info, which each broker maps to exchange semantics.
"""

from __future__ import annotations

import functools
from typing import Any

import backtrader as bt

from trader.model.instruments import FeeSchedule, InstrumentSpec


def order_snapshot(order: bt.Order) -> bt.Order:
    """What ``Order.clone()`` returns, the copy ``notify_order`` receives: the order and its ``executed`` (with the
    fills so far marked as the pending ones), each copied shallowly, without ``copy.copy``. The copy module asks
    the order for ``__setstate__``, which Backtrader's ``Order.__getattr__`` answers with a failed parameter lookup
    (an exception per notification, ~8 % of a backtest's CPU, notes/16-13-speed.md), and its generic protocol costs
    about twenty calls where this takes two (up to four copies lie between a live candle and its order)."""
    executed = order.executed
    executed.markpending()
    obj = object.__new__(type(order))
    obj.__dict__.update(order.__dict__)
    done = object.__new__(type(executed))
    done.__dict__.update(executed.__dict__)
    obj.executed = done
    return obj


@functools.cache
def _param_defaults(cls: type[bt.Order]) -> dict[str, Any]:
    return dict(cls.params._getitems())


def new_order(cls: type[bt.Order], **values: Any) -> bt.Order:
    """What ``cls(**values)`` builds, without Backtrader's metaclass machinery per order: a params object with every
    default and the given values over them, then ``Order.__init__``. The metaclass spends about sixty calls on it
    (a copy of the defaults, a pop and a setattr per parameter, five hook calls) where this spends a few.

    Each parameter is also set on the order itself, so reading ``order.size``, ``order.parent`` and the like (as
    ``__init__``, both brokers and the strategies do) is a plain attribute read instead of ``Order.__getattr__``
    and a failed lookup first. Every read gives the same value as before: Backtrader writes to the order, never
    to its params, after creation (``self.size = -self.size`` for a sell already lands on the order), and
    ``order.p.<name>`` still reads the params."""
    defaults = _param_defaults(cls)
    unknown = values.keys() - defaults.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}")
    merged = {**defaults, **values}
    params = cls.params()
    vars(params).update(merged)
    order = object.__new__(cls)
    vars(order).update(merged)
    order.params = order.p = params
    order.__init__()
    return order


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
        order = new_order(bt.BuyOrder, owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                          exectype=exectype, valid=valid, tradeid=tradeid, trailamount=trailamount,
                          trailpercent=trailpercent, parent=parent, transmit=transmit, histnotify=histnotify)
        order.addinfo(**kwargs)
        return self.submit(order, oco=oco)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
             trailamount=None, trailpercent=None, parent=None, transmit=True, histnotify=False,
             _checksubmit=True, **kwargs):  # noqa: ANN001, ANN201 - Backtrader's signature
        order = new_order(bt.SellOrder, owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                          exectype=exectype, valid=valid, tradeid=tradeid, trailamount=trailamount,
                          trailpercent=trailpercent, parent=parent, transmit=transmit, histnotify=histnotify)
        order.addinfo(**kwargs)
        return self.submit(order, oco=oco)


class FuturesCommInfo(bt.CommInfoBase):
    """Backtrader's view of a USDT-M linear contract, for the order/trade records Backtrader keeps.

    ``stocklike=True`` with explicit leverage is the combination that values a leveraged position correctly
    (stack-notes.md); ``automargin`` would apply leverage twice. Both brokers do the account arithmetic with
    ``trader.model.money`` and hand this object to orders so ``Trade`` objects carry consistent P&L and commission.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("commission", FeeSchedule.taker),
        ("leverage", 25.0),
        ("mult", 1.0),
    )

    def __init__(self, spec: InstrumentSpec | None = None, fees: FeeSchedule | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.fees = fees or FeeSchedule()

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return self.fees.fee(price, size, maker=False)

    def get_margin(self, price: float) -> float:
        return price / self.p.leverage

    def getsize(self, price: float, cash: float) -> float:
        # Backtrader's version returns whole units; crypto sizes are fractional and stepped.
        qty = cash * self.p.leverage / price
        return self.spec.round_qty_down(qty) if self.spec else qty

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return size * (newprice - price)
