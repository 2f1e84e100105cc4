"""The engine loop kept awake around the moment the next candles are due (issue 16: candle close → order on the wire).

Between candles the engine's thread sleeps in ``epoll_wait``; the machine idles its CPU. The closed kline that
wakes it then waits for the OS to schedule the thread again, and the first steps run on a core that was asleep.
Measured in ``bench/live_latency.py --metronome-ms 60`` (master on 10 pairs, the simulator closing a minute every
60 ms on a clock of its own, 200 candles, alternating runs, sleeping → polling): the first frame leaving the
simulator → the engine's selector returning p50 0.54-0.59 → 0.08-0.11 ms; the needed kline leaving the simulator
→ the order on the wire p50 2.01-2.11 → 1.70-1.73 ms, p99 3.06-3.25 → 2.63-2.85 ms; 3-7 ms polled per candle.

Polling all the time would cost a core. Candles come on a grid, though: every minute on the exchange, every step
of a replay, each a little after its grid point. ``CloseSpinner`` learns the grid from the arrivals of each
minute's first closed kline (``window``) and keeps the loop polling (a callback that schedules itself, so the
loop's ``select`` does not sleep) from just before the next grid point until the kline comes or the latest delay
seen has passed. A window lasts at most ``max_window_s`` (250 ms) and ``max_share`` of the period (a quarter):
arrivals too irregular to predict (a resync, a test stepping by hand) cost at most that share of a core, the
exchange's minutes at most 250 ms of polling a minute (0.4 % of one core).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class SpinStats:
    windows: int = 0  # windows polled
    hits: int = 0  # the minute's first kline came while polling
    misses: int = 0  # the window ended first
    early: int = 0  # the kline came before the window opened
    polled_s: float = 0.0


@dataclass
class CloseSpinner:
    loop: asyncio.AbstractEventLoop
    margin_s: float = 0.001
    max_window_s: float = 0.25
    max_share: float = 0.25
    history: int = 15
    plan_delay_s: float = 0.02  # at most; a quarter of the last period at a faster pace
    stats: SpinStats = field(default_factory=SpinStats)

    def __post_init__(self) -> None:
        self._arrivals: deque[float] = deque(maxlen=self.history + 1)
        self._timer: asyncio.TimerHandle | None = None
        self._planner: asyncio.TimerHandle | None = None
        self._until = 0.0
        self._opened = 0.0
        self._polling = False

    @property
    def polling(self) -> bool:
        """A window is open: the next candles are due."""
        return self._polling

    def window(self) -> tuple[float, float] | None:
        """When to poll for the next minute's first kline, as (open, close) on the loop's clock; None before four
        arrivals. The arrivals sit on a grid (the minutes) plus a delay: the period is the grid's slope over the
        last ``history`` arrivals (a missed minute counts as two periods), the earliest of them fixes its phase,
        and the window runs from ``margin_s`` before the next grid point to ``margin_s`` past the latest delay
        seen, for at most ``max_window_s`` and ``max_share`` of the period."""
        a = self._arrivals
        if len(a) < 4:
            return None
        med = statistics.median(y - x for x, y in zip(a, list(a)[1:], strict=False))
        if med <= 0:
            return None
        first = a[0]
        ks = [round((x - first) / med) for x in a]
        if ks[-1] <= 0:
            return None
        period = (a[-1] - first) / ks[-1]
        offsets = [x - k * period for x, k in zip(a, ks, strict=True)]
        base = min(offsets)
        latest = max(offsets) - base
        opens = base + (ks[-1] + 1) * period - self.margin_s
        return opens, min(opens + latest + 2 * self.margin_s, opens + min(self.max_window_s, self.max_share * period))

    def arrived(self) -> None:
        """On the loop: the first closed kline of a new minute is in. Stop polling; plan the next window a little
        later (``_plan``), not now: the minute's other candles and their orders come next, and the plan's
        arithmetic cost the first kline ~35 µs of its ~170 µs (bench/live_latency.py, seed 1, cold caches)."""
        now = self.loop.time()
        if self._polling:
            self._end(now, hit=True)
        elif self._timer is not None:
            self.stats.early += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._planner is not None:
            self._planner.cancel()
            self._planner = None
        if self._arrivals:
            delay = min(self.plan_delay_s, (now - self._arrivals[-1]) / 4)
            self._planner = self.loop.call_at(now + delay, self._plan)
        self._arrivals.append(now)

    def _plan(self) -> None:
        self._planner = None
        planned = self.window()
        if planned is not None and self._timer is None and not self._polling:
            self._timer = self.loop.call_at(planned[0], self._open, planned[1])

    def _open(self, until: float) -> None:
        self._timer = None
        self._polling = True
        self._until = until
        self._opened = self.loop.time()
        self.stats.windows += 1
        self._poll()

    def _poll(self) -> None:
        if not self._polling:
            return
        now = self.loop.time()
        if now >= self._until:
            self._end(now, hit=False)
            return
        self.loop.call_soon(self._poll)  # a ready callback: the loop's next select does not sleep

    def _end(self, now: float, *, hit: bool) -> None:
        self._polling = False
        self.stats.polled_s += now - self._opened
        if hit:
            self.stats.hits += 1
        else:
            self.stats.misses += 1

    def stop(self) -> None:
        for handle in (self._timer, self._planner):
            if handle is not None:
                handle.cancel()
        self._timer = self._planner = None
        if self._polling:
            self._end(self.loop.time(), hit=False)
        s = self.stats
        if s.windows or s.early:
            log.info("polling before candles: %d windows, %d with the candles inside, %d ended first, %d candles "
                     "before the window; %.1f s polled", s.windows, s.hits, s.misses, s.early, s.polled_s)
