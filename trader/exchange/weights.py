"""Request weight accounting and a priority gate in front of the exchange.

Binance limits by weight per IP per minute and reports the running total in ``X-MBX-USED-WEIGHT-1M``. The gate
admits requests by priority when the budget is tight: cancels and reduce-only exits first, new entries next,
market data last, so protection never waits behind a chart refresh. After a 429 or 418 nothing but the most
urgent class is sent until Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    PROTECT = 0  # cancels, stops, reduce-only exits
    ENTRY = 1  # new entries
    ACCOUNT = 2  # balance/position reads
    MARKET_DATA = 3  # candles, books, tickers


@dataclass
class WeightState:
    limit: int = 2400
    used: int = 0
    observed_at: float = 0.0  # monotonic time of the header that set ``used``
    minute: int = -1  # wall-clock minute of that header; Binance resets the counter each minute
    banned_until: float = 0.0  # monotonic
    warned_minute: int = -2


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    cost: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class WeightGate:
    """Tracks used weight from headers and admits requests by priority.

    Reserve shares: entries may use the budget up to ``entry_share``, market data up to ``data_share``; protective
    requests may use all of it. Headers are the truth; between headers the gate adds the costs it admitted.
    """

    def __init__(
        self,
        limit: int = 2400,
        *,
        warn_share: float = 0.8,
        entry_share: float = 0.9,
        data_share: float = 0.7,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_warning: Callable[[int, int], None] | None = None,
    ):
        self.state = WeightState(limit=limit)
        self._warn_share = warn_share
        self._shares = {Priority.PROTECT: 1.0, Priority.ENTRY: entry_share, Priority.ACCOUNT: entry_share,
                        Priority.MARKET_DATA: data_share}
        self._clock = clock
        self._wall = wall
        self._on_warning = on_warning
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None

    # -- accounting -------------------------------------------------------------------------------------------------
    def _current_minute(self) -> int:
        return int(self._wall() // 60)

    def used(self) -> int:
        if self.state.minute != self._current_minute():
            return 0
        return self.state.used

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        raw = lowered.get("x-mbx-used-weight-1m")
        if raw is None:
            return
        try:
            used = int(raw)
        except ValueError:
            return
        self.state.used = used
        self.state.minute = self._current_minute()
        self.state.observed_at = self._clock()
        if used >= self._warn_share * self.state.limit and self.state.warned_minute != self.state.minute:
            self.state.warned_minute = self.state.minute
            log.warning("request weight at %d of %d this minute", used, self.state.limit)
            if self._on_warning:
                self._on_warning(used, self.state.limit)
        self._release()

    def observe_ban(self, retry_after_s: float | None, status: int) -> None:
        """A 429 (throttled) or 418 (banned): stop sending until Retry-After, or a minute when none is given."""
        pause = retry_after_s if retry_after_s is not None else (60.0 if status == 429 else 120.0)
        self.state.banned_until = max(self.state.banned_until, self._clock() + pause)
        log.error("exchange answered %d; pausing requests for %.0fs", status, pause)

    def paused_for(self) -> float:
        return max(0.0, self.state.banned_until - self._clock())

    # -- admission --------------------------------------------------------------------------------------------------
    def _admissible(self, priority: int, cost: int) -> bool:
        if self.paused_for() > 0:
            return False
        budget = self._shares[Priority(priority)] * self.state.limit
        return self.used() + cost <= budget or (priority == Priority.PROTECT and self.used() < self.state.limit)

    async def acquire(self, priority: Priority, cost: int = 1) -> None:
        """Wait until a request of this priority and cost may be sent."""
        if not self._queue and self._admissible(priority, cost):
            self._admit(cost)
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(int(priority), next(self._seq), cost, loop.create_future())
        heapq.heappush(self._queue, waiter)
        self._schedule(loop)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter in self._queue:
                self._queue.remove(waiter)
                heapq.heapify(self._queue)
            raise

    def _admit(self, cost: int) -> None:
        if self.state.minute != self._current_minute():
            self.state.minute, self.state.used = self._current_minute(), 0
        self.state.used += cost

    def _release(self) -> None:
        while self._queue:
            head = self._queue[0]
            if head.future.done():
                heapq.heappop(self._queue)
                continue
            if not self._admissible(head.priority, head.cost):
                break
            heapq.heappop(self._queue)
            self._admit(head.cost)
            head.future.set_result(None)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._release()
        if not self._queue or (self._wakeup and not self._wakeup.cancelled()):
            return
        # Re-check when the ban ends or the minute rolls over, whichever comes first.
        wait = self.paused_for() or (60 - self._wall() % 60) + 0.01
        self._wakeup = loop.call_later(wait, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wakeup = None
        self._schedule(loop)
