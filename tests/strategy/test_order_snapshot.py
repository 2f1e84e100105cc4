"""What ``notify_order`` receives from either broker (backtest and live): ``order_snapshot`` copies an order as
Backtrader's ``Order.clone`` does (the order and its ``executed``, with the fills so far marked as the pending
ones), so a later change to the order does not show in a notification already queued."""

from __future__ import annotations

import backtrader as bt

from trader.strategy.broker_common import order_snapshot


def _order() -> bt.Order:
    order = bt.BuyOrder(owner=None, data=None, size=2.0, price=100.0, exectype=bt.Order.Limit, simulated=True)
    order.addinfo(tag="entry", reduce_only=False)
    order.execute(1.0, 1.0, 100.0, 0.0, 0.0, 0.0, 1.0, 4.0, 0.04, 4.0, 0.0, 1.0, 100.0)
    return order


def _shape(copy: bt.Order, source: bt.Order) -> dict[str, object]:
    """How ``copy`` relates to ``source``: which attributes are the very same objects, which equal values."""
    assert type(copy) is type(source) and copy is not source
    assert copy.executed is not source.executed and type(copy.executed) is type(source.executed)
    return {
        "attributes": sorted(vars(copy)),
        "shared": sorted(k for k, v in vars(copy).items() if v is vars(source)[k]),
        "executed attributes": sorted(vars(copy.executed)),
        "executed shared": sorted(k for k, v in vars(copy.executed).items() if v is vars(source.executed)[k]),
        "executed equal": vars(copy.executed) == vars(source.executed),
        "pending": (copy.executed.p1, copy.executed.p2),
    }


def test_a_snapshot_is_what_backtrader_clone_makes() -> None:
    a, b = _order(), _order()
    theirs, ours = a.clone(), order_snapshot(b)
    assert _shape(ours, b) == _shape(theirs, a)
    assert _shape(ours, b)["pending"] == (0, 1) and list(ours.executed.iterpending()) == list(b.executed.exbits)
    # a copy, not the order: what happens to the order later does not change the queued notification
    b.completed()
    b.executed.markpending()
    assert ours.status == bt.Order.Partial and b.status == bt.Order.Completed
    assert (ours.executed.p1, ours.executed.p2) == (0, 1) != (b.executed.p1, b.executed.p2)
