"""Both brokers build a strategy's orders with ``new_order`` instead of Backtrader's metaclass call: the order must
be the one ``bt.BuyOrder(**values)`` / ``bt.SellOrder(**values)`` builds, attribute for attribute, with its
parameters also on the order (read without ``Order.__getattr__``) and nothing else different."""

from __future__ import annotations

import datetime as dt
from typing import Any

import backtrader as bt
import pandas as pd
import pytest

from trader.strategy.broker_common import new_order

CASES: list[tuple[type[bt.Order], dict[str, Any]]] = [
    (bt.BuyOrder, {"size": 0.5}),  # a market entry: the close as its reference price
    (bt.SellOrder, {"size": 0.5}),  # a sell's size turns negative on the order, not in its params
    (bt.BuyOrder, {"size": 2.0, "price": 95.0, "exectype": bt.Order.Limit, "tradeid": 3}),
    (bt.SellOrder, {"size": 1.0, "price": 90.0, "pricelimit": 89.5, "exectype": bt.Order.StopLimit}),
    (bt.SellOrder, {"size": 1.0, "price": 99.0, "exectype": bt.Order.StopTrail, "trailamount": 2.0}),
    (bt.BuyOrder, {"size": 1.0, "valid": dt.timedelta(minutes=5), "transmit": False}),
    (bt.BuyOrder, {"size": 1.0, "valid": 0}),
    (bt.SellOrder, {"size": 3.0, "price": 101.0, "exectype": bt.Order.Stop, "histnotify": True}),
]


def _comparable(order: bt.Order) -> dict[str, Any]:
    out = {k: v for k, v in vars(order).items() if k not in ("ref", "params", "p", "created", "executed", "info")}
    out["created"] = {k: v for k, v in vars(order.created).items() if k != "exbits"}
    out["executed"] = {k: v for k, v in vars(order.executed).items() if k != "exbits"}
    out["params"] = dict(vars(order.params))
    out["info"] = dict(order.info)
    return out


class _Compare(bt.Strategy):
    def __init__(self) -> None:
        self.checked = 0

    def next(self) -> None:
        for cls, values in CASES:
            values = {"owner": self, "data": self.data, **values}
            theirs, ours = cls(**values), new_order(cls, **values)
            assert ours.ref == theirs.ref + 1  # the same order counter
            expected = _comparable(theirs)
            mirrored = {k: v for k, v in vars(theirs.params).items() if k not in vars(theirs)}
            assert _comparable(ours) == {**expected, **mirrored}
            # every read through the order gives what Backtrader's order gives
            for name in vars(theirs.params):
                assert getattr(ours, name) == getattr(theirs, name), name
                assert getattr(ours.p, name) == getattr(theirs.p, name), name
            self.checked += 1


def test_new_order_builds_the_order_backtraders_metaclass_builds() -> None:
    # The mirrored parameters must not shadow anything the order's class defines.
    for cls in (bt.BuyOrder, bt.SellOrder):
        assert not [name for name in vars(cls.params()) if hasattr(cls, name)]
    index = pd.date_range("2025-05-21", periods=3, freq="1min", tz=None)
    frame = pd.DataFrame({"open": [100.0, 101.0, 102.0], "high": [101.0, 102.0, 103.0], "low": [99.0, 100.0, 101.0],
                          "close": [100.5, 101.5, 102.5], "volume": [1.0, 1.0, 1.0]}, index=index)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(_Compare)
    (strategy,) = cerebro.run()
    assert strategy.checked == 3 * len(CASES)


def test_new_order_refuses_what_is_not_a_parameter() -> None:
    with pytest.raises(TypeError, match="reduce_only"):
        new_order(bt.BuyOrder, owner=None, data=None, size=1.0, simulated=True, reduce_only=True)
