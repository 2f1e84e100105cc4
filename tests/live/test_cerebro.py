"""LiveCerebro's lean loop moves exactly the feeds whose next bar is the earliest (Backtrader's minimum-datetime
rule, without loading and rewinding the others), passes each pass through the broker and the strategy, and ends
at the feeds' end marker; a strategy sees the same bars in the same passes as under Backtrader's own loop."""

from __future__ import annotations

import threading
from typing import Any

import backtrader as bt
import pytest

from trader.backtest.feeds import ms_to_bt_one
from trader.live.cerebro import LiveCerebro
from trader.live.feed import MINUTE, Bar, live_feed_class

A, B = "AAA/USDT:USDT", "BBB/USDT:USDT"
T0 = 1_747_573_200_000


class Record(bt.Strategy):
    def start(self) -> None:
        self.passes: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, str]] = []

    def notify_data(self, data: bt.DataBase, status: int, *args: Any, **kwargs: Any) -> None:
        self.statuses.append((data._name, data._getstatusname(status)))

    def next(self) -> None:
        self.passes.append({d._name: (len(d), d.datetime[0]) for d in self.datas})


def _bars(minutes: list[int]) -> list[Bar]:
    return [Bar(T0 + m * MINUTE, 1.0 + m, 2.0 + m, 0.5 + m, 1.5 + m, 10.0) for m in minutes]


def _run(cerebro_cls: type[bt.Cerebro], shared_lock: bool = True) -> Record:
    lock = threading.Lock() if shared_lock else None  # the engine's feeds share one; without, each has its own
    cls = live_feed_class(())
    feeds = {p: cls(pair=p, name=p, lock=lock, qcheck=0.01) for p in (A, B)}
    feeds[A].preload_history(_bars([0, 1, 2, 3]))
    feeds[B].preload_history(_bars([1, 3]))  # B has no candle at minutes 0 and 2
    for f in feeds.values():
        f.end()
    cerebro = cerebro_cls(stdstats=False, quicknotify=True, live=True, exactbars=False)
    for p, f in feeds.items():
        cerebro.adddata(f, name=p)
    cerebro.addstrategy(Record)
    (strat,) = cerebro.run()
    return strat


@pytest.mark.parametrize("shared_lock", [True, False])
def test_the_lean_loop_moves_the_earliest_feeds_only_as_backtrader_does(shared_lock: bool) -> None:
    strat = _run(LiveCerebro, shared_lock)
    got = strat.passes
    dt = [ms_to_bt_one(T0 + m * MINUTE) for m in range(4)]
    # next() from the first pass with both feeds holding a bar (minute 1): A alone at 2, both at 3
    assert got == [{A: (2, dt[1]), B: (1, dt[1])}, {A: (3, dt[2]), B: (1, dt[1])}, {A: (4, dt[3]), B: (2, dt[3])}]
    theirs = _run(bt.Cerebro, shared_lock)
    assert got == theirs.passes
    # the feeds' status notifications reach the strategy as under Backtrader's loop (a feed with none queued
    # answers without Backtrader's marker round trip)
    assert strat.statuses == theirs.statuses and (A, "DELAYED") in strat.statuses
