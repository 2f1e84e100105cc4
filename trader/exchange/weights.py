"""Request weight accounting, rate-limit pauses and a priority gate in front of the exchange.

Binance limits request weight per IP per minute (``X-MBX-USED-WEIGHT-1M``, a 429 with −1003 when broken) and new
orders per account per 10 s and per minute (``X-MBX-ORDER-COUNT-10S``/``-1M``, a 429 with −1015); continuing
after 429s earns a 418, an IP ban of 2 minutes to 3 days (binance-futures.md §8.1–8.2).

The gate admits requests by priority when the budget is tight: cancels, stops and reduce-only exits first, new
entries next, market data last, so protection never waits behind a chart refresh.

After a 429 only the requests the limit concerns are paused, until Retry-After:
- a request-weight 429 pauses entries, account reads and market data. Protective requests (``Priority.PROTECT``)
  are not held behind it; if they are refused themselves the client retries them after a short bounded backoff,
  and after ``max_strikes`` refusals within one pause they are paused too (continuing would earn a 418);
- an order-count 429 pauses new entries only;
- a 418 (ban) stops everything: every request is refused at once with ``RateLimited`` (``banned``).

Nothing waits silently for long: each priority has a longest wait (``max_wait_s``). A request that would wait
longer is refused at once with ``RateLimited``, which says for how long and why, and which guarantees the request
was not sent; a request still queued when its bound runs out is refused the same way. So nothing is parked for
tens of seconds and then fired in a burst at the end of a pause.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from trader.exchange.errors import Classified, ErrorClass, ExchangeError

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    PROTECT = 0  # cancels, stops, reduce-only exits
    ENTRY = 1  # new entries
    ACCOUNT = 2  # balance/position reads
    MARKET_DATA = 3  # candles, books, tickers


class Limit(enum.Enum):
    WEIGHT = "request weight"  # per IP per minute (429, −1003), or the local budget for it
    ORDERS = "order count"  # per account per 10 s / minute (429, −1015)
    BAN = "ban"  # 418: the IP is banned


# Longest a request of each priority may wait in the gate before it is refused instead (seconds).
DEFAULT_MAX_WAIT_S: dict[Priority, float] = {
    Priority.PROTECT: 2.0, Priority.ENTRY: 2.0, Priority.ACCOUNT: 5.0, Priority.MARKET_DATA: 10.0,
}
ORDER_COUNT_CODE = -1015
DEFAULT_BAN_S = 120.0  # a 418 without Retry-After: Binance's shortest ban
DEFAULT_ORDER_PAUSE_S = 10.0  # an order-count 429 without Retry-After: the 10-second counter


class RateLimited(ExchangeError):
    """The gate did not send the request (certain: nothing reached the exchange).

    ``wait_s``: how long until it could be sent; ``limit``: which limit; ``cause``: the request whose 429 started
    the pause, when known. The message is meant to be shown as is ("not sent: …").
    """

    sent = False

    def __init__(self, operation: str, wait_s: float, limit: Limit, cause: str = "", *, detail: str = ""):
        self.wait_s = max(0.0, wait_s)
        self.limit = limit
        self.cause = cause
        if limit is Limit.BAN:
            text = f"not sent: the exchange has banned this IP (418) for another {self.wait_s:.0f} s"
            status, code = 418, -1003
        else:
            why = detail or (f"after a 429 on {cause}" if cause else "")
            text = f"not sent: rate limited ({limit.value}{', ' + why if why else ''}) for another {self.wait_s:.0f} s"
            status, code = 429, (ORDER_COUNT_CODE if limit is Limit.ORDERS else -1003)
        super().__init__(Classified(ErrorClass.TEMPORARY, code, status, text, retry_after_s=self.wait_s), operation)

    @property
    def banned(self) -> bool:
        return self.limit is Limit.BAN


@dataclass
class WeightState:
    limit: int = 2400
    used: int = 0
    observed_at: float = 0.0  # monotonic time of the header that set ``used``
    minute: int = -1  # wall-clock minute of that header; Binance resets the counter each minute
    banned_until: float = 0.0  # monotonic: end of the longest pause (any limit); see WeightGate.pauses
    warned_minute: int = -2
    orders_10s: int = 0  # last X-MBX-ORDER-COUNT-10S / -1M seen
    orders_1m: int = 0


@dataclass
class Pause:
    until: float  # monotonic
    cause: str = ""  # the endpoint whose answer started it
    strikes: int = 1  # 429s answered while it lasted


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    cost: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class WeightGate:
    """Tracks used weight from headers, keeps the pauses rate-limit answers impose, admits requests by priority.

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
        max_wait_s: Mapping[Priority, float] | None = None,
        max_strikes: int = 3,
    ):
        self.state = WeightState(limit=limit)
        self._warn_share = warn_share
        self._shares = {Priority.PROTECT: 1.0, Priority.ENTRY: entry_share, Priority.ACCOUNT: entry_share,
                        Priority.MARKET_DATA: data_share}
        self._clock = clock
        self._wall = wall
        self._on_warning = on_warning
        self.max_wait_s: dict[Priority, float] = {**DEFAULT_MAX_WAIT_S, **(max_wait_s or {})}
        self.max_strikes = max_strikes
        self.pauses: dict[Limit, Pause] = {}
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None
        self.refused = 0  # requests refused by the gate (RateLimited)

    # -- accounting -------------------------------------------------------------------------------------------------
    def _current_minute(self) -> int:
        return int(self._wall() // 60)

    def _to_next_minute(self) -> float:
        return 60 - self._wall() % 60 + 0.01

    def used(self) -> int:
        if self.state.minute != self._current_minute():
            return 0
        return self.state.used

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        for key, attr in (("x-mbx-order-count-10s", "orders_10s"), ("x-mbx-order-count-1m", "orders_1m")):
            if key in lowered:
                try:
                    setattr(self.state, attr, int(lowered[key]))
                except ValueError:
                    pass
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

    def observe_limit(self, status: int, retry_after_s: float | None = None, *, code: int | None = None,
                      endpoint: str = "") -> Pause | None:
        """A 429 or 418 answer: pause what that limit concerns until Retry-After (see the module docstring)."""
        if status not in (418, 429):
            return None
        now = self._clock()
        if status == 418:
            limit, pause_s = Limit.BAN, retry_after_s if retry_after_s is not None else DEFAULT_BAN_S
        elif code == ORDER_COUNT_CODE:
            limit, pause_s = Limit.ORDERS, retry_after_s if retry_after_s is not None else DEFAULT_ORDER_PAUSE_S
        else:  # request weight resets with the minute
            limit, pause_s = Limit.WEIGHT, retry_after_s if retry_after_s is not None else self._to_next_minute()
        pause_s = max(0.0, pause_s)
        current = self.pauses.get(limit)
        if current is not None and current.until > now:
            current.until = max(current.until, now + pause_s)
            current.strikes += 1
            pause = current
        else:
            pause = self.pauses[limit] = Pause(now + pause_s, endpoint)
        self.state.banned_until = max(self.state.banned_until, pause.until)
        what = {Limit.BAN: "everything", Limit.ORDERS: "new entries",
                Limit.WEIGHT: "entries and reads (protective requests still go)"
                if pause.strikes < self.max_strikes else "everything, protective requests included"}[limit]
        log.error("exchange answered %d (%s) to %s; pausing %s for %.0f s (refusal %d in this pause)", status,
                  limit.value, endpoint or "a request", what, pause.until - now, pause.strikes)
        self._release()
        return pause

    def refusal(self, operation: str, status: int, code: int | None = None) -> RateLimited:
        """The error for a request the exchange refused with a 429/418 and that is not sent again: the pause that
        answer started says for how long."""
        limit = Limit.BAN if status == 418 else Limit.ORDERS if code == ORDER_COUNT_CODE else Limit.WEIGHT
        pause = self.pauses.get(limit)
        left = pause.until - self._clock() if pause is not None else 0.0
        return self._refuse(operation, left, limit, pause.cause if pause is not None else "")

    def observe_ban(self, retry_after_s: float | None, status: int) -> None:
        """Compatibility: a 429 (taken as a request-weight limit) or a 418."""
        self.observe_limit(status, retry_after_s)

    def blocked(self, priority: Priority) -> tuple[float, Limit | None, str]:
        """How long a request of this priority is held by a pause: (seconds, limit, cause)."""
        now = self._clock()
        best: tuple[float, Limit | None, str] = (0.0, None, "")
        for limit, pause in self.pauses.items():
            left = pause.until - now
            if left <= 0 or not self._applies(limit, pause, Priority(priority)):
                continue
            if limit is Limit.BAN:
                return left, limit, pause.cause
            if left > best[0]:
                best = (left, limit, pause.cause)
        return best

    def _applies(self, limit: Limit, pause: Pause, priority: Priority) -> bool:
        if limit is Limit.BAN:
            return True
        if limit is Limit.ORDERS:
            return priority is Priority.ENTRY
        # Request weight: protection goes on until it has itself been refused too often in this pause.
        return priority is not Priority.PROTECT or pause.strikes >= self.max_strikes

    def paused_for(self, priority: Priority | None = None) -> float:
        """Seconds until a request of ``priority`` is no longer paused; without one, until every pause is over."""
        if priority is not None:
            return self.blocked(priority)[0]
        now = self._clock()
        return max([0.0, *(p.until - now for p in self.pauses.values())])

    # -- admission --------------------------------------------------------------------------------------------------
    def _budget_ok(self, priority: int, cost: int) -> bool:
        budget = self._shares[Priority(priority)] * self.state.limit
        return self.used() + cost <= budget or (priority == Priority.PROTECT and self.used() < self.state.limit)

    def _admissible(self, priority: int, cost: int) -> bool:
        return self.blocked(Priority(priority))[0] <= 0 and self._budget_ok(priority, cost)

    def _ahead(self, priority: int) -> bool:
        """A request of equal or higher priority is already waiting for budget (not merely paused)."""
        return any(not w.future.done() and w.priority <= priority and self.blocked(Priority(w.priority))[0] <= 0
                   for w in self._queue)

    def _refuse(self, operation: str, wait_s: float, limit: Limit, cause: str = "", detail: str = "") -> RateLimited:
        self.refused += 1
        error = RateLimited(operation, wait_s, limit, cause, detail=detail)
        log.warning("%s", error)
        return error

    async def acquire(self, priority: Priority, cost: int = 1, *, max_wait_s: float | None = None,
                      operation: str = "") -> float:
        """Wait until a request of this priority and cost may be sent; returns the seconds waited.

        Raises ``RateLimited`` at once when the IP is banned or a pause holds this priority longer than
        ``max_wait_s`` (default: the gate's bound for the priority), and when still waiting at that bound.
        """
        priority = Priority(priority)
        bound = self.max_wait_s[priority] if max_wait_s is None else max(0.0, max_wait_s)
        left, limit, cause = self.blocked(priority)
        if limit is Limit.BAN:
            raise self._refuse(operation, left, limit, cause)
        if limit is not None and left > bound:
            raise self._refuse(operation, left, limit, cause)
        if not self._ahead(priority) and self._admissible(priority, cost):
            self._admit(cost)
            return 0.0
        if left <= 0 and not self._budget_ok(priority, cost) and self._to_next_minute() > bound:
            raise self._refuse(operation, self._to_next_minute(), Limit.WEIGHT,
                               detail=f"{self.used()} of {self.state.limit} used this minute")
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = _Waiter(int(priority), next(self._seq), cost, loop.create_future())
        self._queue.append(waiter)
        self._schedule(loop)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), bound)
        except asyncio.TimeoutError:
            self._drop(waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                return loop.time() - started  # admitted at the very moment the bound ran out
            waiter.future.cancel()
            left, limit, cause = self.blocked(priority)
            if limit is None:
                left, limit = self._to_next_minute(), Limit.WEIGHT
            raise self._refuse(operation, left, limit, cause, detail="" if cause else
                               f"waited {bound:.1f} s for request weight") from None
        except asyncio.CancelledError:
            self._drop(waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                self._unadmit(cost)
            waiter.future.cancel()
            raise
        return loop.time() - started

    def _drop(self, waiter: _Waiter) -> None:
        if waiter in self._queue:
            self._queue.remove(waiter)

    def _admit(self, cost: int) -> None:
        if self.state.minute != self._current_minute():
            self.state.minute, self.state.used = self._current_minute(), 0
        self.state.used += cost

    def _unadmit(self, cost: int) -> None:
        if self.state.minute == self._current_minute():
            self.state.used = max(0, self.state.used - cost)

    def _release(self) -> None:
        self._queue = [w for w in self._queue if not w.future.done()]
        for waiter in sorted(self._queue):
            if self.blocked(Priority(waiter.priority))[0] > 0:
                continue  # paused; requests of other classes may go past it
            if not self._budget_ok(waiter.priority, waiter.cost):
                break  # budget goes by priority: nothing of lower priority overtakes this one
            self._queue.remove(waiter)
            self._admit(waiter.cost)
            waiter.future.set_result(None)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._release()
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        if not self._queue:
            return
        # Re-check when the first pause that holds a waiter ends, or when the minute rolls over.
        waits = [self._to_next_minute()]
        waits += [left for w in self._queue if (left := self.blocked(Priority(w.priority))[0]) > 0]
        self._wakeup = loop.call_later(max(0.01, min(waits)), self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wakeup = None
        self._schedule(loop)
