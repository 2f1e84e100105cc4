"""Backtrader's live loop, lean: the same steps per pass for the engine's own feeds, without the per-feed dance.

``Cerebro._runnext`` asks every feed for a bar at each pass (a timed wait, ``next``, then a second ``next`` against
the feed that did move, and a rewind for a feed that moved too far), with notifications, two timer checks and the
broker in between. Ten feeds make that ~0.2 ms of Python per pass with cold caches, on every candle's way to its
order (issue 16). ``LiveFeed``s can say what they hold without moving (``_peek``), so this loop moves exactly the
feeds whose next bar is the earliest — Backtrader's rule of the minimum datetime — and keeps every other step
of a pass in Backtrader's order: store and data notifications, cheat timers, the broker's notifications (the
live broker applies the desk's fills and the service's commands there), timers, each strategy's ``_next`` and
the writers. With nothing queued it parks on the feeds' wake-up (the engine's StrategyRunner) for up to
``qcheck`` and hands the broker its turn, as Backtrader does between bars. A feed's end marker ends the run.
Feeds of any other kind run Backtrader's own loop.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt
from backtrader.utils import num2date

from trader.live.feed import LiveFeed


class LiveCerebro(bt.Cerebro):
    def _datanotify(self) -> None:
        # Twice a pass, on the way from a candle to its order: feeds rarely have a status change to report.
        for d in self.datas:
            if d.notifs:
                super()._datanotify()
                return

    def _runnext(self, runstrats: list[Any]) -> None:
        feeds: list[LiveFeed] = list(self.datas)
        if not feeds or not all(isinstance(d, LiveFeed) for d in feeds):
            super()._runnext(runstrats)
            return
        wake = feeds[0]._wake
        qcheck = float(feeds[0].p.qcheck)
        # The engine's feeds share one lock (the store releases a minute's bars under it): taken once per pass.
        lock = feeds[0]._lock if all(d._lock is feeds[0]._lock for d in feeds) else None
        while True:
            self._storenotify()
            self._datanotify()
            if self._event_stop:
                return
            if lock is not None:
                with lock:
                    heads = [(d, d._peek_locked()) for d in feeds]
            else:
                heads = [(d, d._peek()) for d in feeds]
            # Lists, not generators, here and below: a generator costs a frame resume per feed on every pass.
            if None in [item for _d, item in heads]:
                break  # LiveEngine.stop: the end marker
            ready = [(d, item) for d, item in heads if item is not False]
            if not ready:
                wake.wait(qcheck)
                wake.clear()
                self._brokernotify()  # notes and commands arrive without bars too
                if self._event_stop:
                    return
                continue
            first = min([item[0].ts_ms for _d, item in ready])  # type: ignore[index]
            moved: LiveFeed | None = None
            for d, item in ready:
                if item[0].ts_ms == first:  # type: ignore[index]
                    d._take()
                    d._apply(item)  # type: ignore[arg-type]
                    moved = d
            assert moved is not None
            dt0 = moved.lines.datetime[0]
            self._dtmaster = moved.num2date(dt0)
            self._udtmaster = num2date(dt0)
            self._datanotify()
            if self._event_stop:
                return
            self._check_timers(runstrats, dt0, cheat=True)
            if self.p.cheat_on_open:
                for strat in runstrats:
                    strat._next_open()
                    if self._event_stop:
                        return
            self._brokernotify()
            if self._event_stop:
                return
            self._check_timers(runstrats, dt0, cheat=False)
            for strat in runstrats:
                strat._next()
                if self._event_stop:
                    return
                self._next_writers(runstrats)
        self._datanotify()
        if self._event_stop:
            return
        self._storenotify()
