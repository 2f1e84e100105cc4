"""The live market-side watch, on the engine loop: local order books, 24 h volume, liquidity tiers and the
exchange's maintenance schedule, turned into decisions (trader/risk/liquidity.py, trader/risk/maintenance.py).

- ``entry(pair, at_ms)`` is the gate the risk rules ask before every entry (trader/risk/gate.py: the engine sets
  it on its broker): 0 refuses (a maintenance window or its lead time; moderate or severe illiquidity), 0.5 halves
  (mild); ``refusal(pair)`` is the same check at the exchange's clock now, for the desk's last look at an entry
  and for forced entries.
- Every tier change and maintenance transition is a ``RiskAction`` carrying its rule and numbers.
- Severe illiquidity closes the pair's position in ``close_stages`` reduce-only market parts ``close_stage_s``
  apart (exchange seconds), stopping early if the tier recovers; after a maintenance window the desk re-reads the
  account (fills, positions) and re-places any missing stop.

The exchange's clock: the replayed simulator runs faster than the wall clock, and the schedule is on the
exchange's clock, so the watch keeps a model of it (``ExchangeClock``: the server time and its rate, read at every
poll) and polls every ``poll_s`` exchange seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.events import EventBus, RiskAction
from trader.exchange.client import ExchangeClient, not_sent
from trader.exchange.errors import ExchangeError
from trader.exchange.orderbook import LocalOrderBook
from trader.exchange.streams import DepthStream, StreamOptions
from trader.risk.gate import ALLOW, MarketVerdict
from trader.risk.liquidity import LiquidityReading, LiquidityRules, Tier, TierTracker, assess_book
from trader.risk.maintenance import MaintenanceSchedule, MaintenanceState, parse_windows

log = logging.getLogger(__name__)

CLOCK_READ_S = 5.0  # wall seconds between reads of the server time at most
MIN_VOLUME_S = 30.0  # wall seconds between reads of the 24 h volumes at least (it moves slowly; weight per pair)
QUIET_S = 10.0  # after a rate-limit refusal, no reads for this long (they would be refused too)
UNAVAILABLE_READS = 3  # consecutive 503 answers (each after the client's retries) before it counts as maintenance

_TIER_ACTIONS = {Tier.NORMAL: "entries_resumed", Tier.MILD: "size_halved", Tier.MODERATE: "entries_blocked",
                 Tier.SEVERE: "liquidity_close"}


@dataclass
class ExchangeClock:
    """The exchange's time now, from the last server time read and its rate against the wall clock."""

    server_ms: int | None = None
    wall: float = 0.0
    rate: float = 1.0
    _first: tuple[int, float] | None = None

    def observe(self, server_ms: int, wall: float | None = None) -> None:
        wall = time.monotonic() if wall is None else wall
        if self._first is None:
            self._first = (server_ms, wall)
        else:
            ms0, w0 = self._first
            if wall - w0 >= 1.0 and server_ms > ms0:
                self.rate = min(1000.0, max(1.0, (server_ms - ms0) / 1000 / (wall - w0)))
        self.server_ms, self.wall = server_ms, wall

    def now_ms(self) -> int:
        """The last server time plus the wall time since, at rate 1: a replay that is stepped rather than run
        must not be extrapolated ahead (the rate paces the polls, which keep this within one poll)."""
        if self.server_ms is None:
            return int(time.time() * 1000)
        return int(self.server_ms + (time.monotonic() - self.wall) * 1000)


@dataclass
class MarketOptions:
    poll_s: float = 60.0  # exchange seconds between reads of the schedule and the server time
    volume_refresh_s: float = 300.0  # exchange seconds between reads of the 24 h volume
    tick_s: float = 0.5  # wall seconds between evaluations
    close_stages: int = 3
    close_stage_s: float = 10.0  # exchange seconds between the parts of a staged close
    min_poll_s: float = 5.0  # wall seconds between reads of the schedule at least (a 60× replay would ask every second)


class MarketWatch:
    def __init__(self, client: ExchangeClient, pairs: list[str], *, liquidity: LiquidityRules,
                 schedule: MaintenanceSchedule, bus: EventBus, options: MarketOptions | None = None,
                 ws_base: str | None = None, depth: bool = True):
        self.client = client
        self.pairs = list(pairs)
        self.rules = liquidity
        self.schedule = schedule
        self.bus = bus
        self.options = options or MarketOptions()
        self.ws_base = ws_base if ws_base is not None else (client.options.ws_url or "wss://fstream.binance.com")
        self.use_depth = depth
        self.clock = ExchangeClock()
        self.tracker = TierTracker(liquidity)
        self.depth: dict[str, DepthStream] = {}
        self.volume: dict[str, float] = {}
        self.readings: dict[str, LiquidityReading] = {}  # acting readings (after the hold)
        self.maintenance: MaintenanceState = schedule.state(self.clock.now_ms())
        self.desk: Any = None  # the OrderDesk: staged closes and the resync after a window
        self.closing: dict[str, asyncio.Task[None]] = {}
        self.actions: list[RiskAction] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_poll = -1e18
        self._last_clock = -1e18
        self._quiet_until = -1e18
        self._unavailable = 0  # consecutive 503 answers to the server-time read
        self._last_volume = -1e18
        self.on_resync: Callable[[], Any] | None = None

    # -- life -------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.poll()
        await self.refresh_volume()
        if self.use_depth:
            for pair in self.pairs:
                # Binance's deepest snapshot (weight 20, at each reconnect) reaches furthest into the band; the
                # simulator's book has 50 levels and a replay reconnects often: 100 (weight 5).
                limit = 100 if self.client.options.api_url else 1000
                stream = DepthStream(self.client, pair, self.ws_base, options=StreamOptions(heartbeat_s=30.0),
                                     snapshot_limit=limit)
                self.depth[pair] = stream
                self._tasks.append(loop.create_task(stream.run(self._stop), name=f"depth-{pair}"))
        self._tasks.append(loop.create_task(self._run(), name="market-watch"))

    async def stop(self) -> None:
        self._stop.set()
        for task in [*self._tasks, *self.closing.values()]:
            task.cancel()
        for task in [*self._tasks, *self.closing.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wall = time.monotonic()
                rate = self.clock.rate
                if wall < self._quiet_until:
                    pass  # the client is rate limited: nothing would be sent (and the evaluation goes on)
                elif wall - self._last_poll >= max(self.options.poll_s / rate, self.options.min_poll_s):
                    await self.poll()
                elif wall - self._last_clock >= CLOCK_READ_S:
                    await self.read_clock()
                if wall >= self._quiet_until and wall - self._last_volume >= max(self.options.volume_refresh_s / rate,
                                                                                 MIN_VOLUME_S):
                    await self.refresh_volume()
                await self.evaluate()
            except Exception:  # the watch must outlive one bad evaluation
                log.exception("market watch: evaluation failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.options.tick_s)

    # -- reading ----------------------------------------------------------------------------------------------
    async def poll(self) -> None:
        """The server time (the clock model; a 503 means maintenance) and the announced windows."""
        self._last_poll = time.monotonic()
        await self.read_clock()
        if time.monotonic() < self._quiet_until:
            return
        try:
            rows = await self.client.fetch_maintenance_windows()
            if rows is not None:
                self.schedule.set_announced(parse_windows(rows))
        except (ExchangeError, ValueError) as exc:
            if isinstance(exc, ExchangeError) and not_sent(exc):
                self._quiet_until = time.monotonic() + QUIET_S
            log.warning("market watch: maintenance schedule: %s", exc)

    async def read_clock(self) -> None:
        """The server time, read at least every ``CLOCK_READ_S`` (one weight): it paces the polls and tells the
        exchange's rate against the wall clock (a replay runs faster); a 503 answer means maintenance."""
        self._last_clock = time.monotonic()
        try:
            self.clock.observe(await self.client.fetch_time())
            self.schedule.observe_available()
            self._unavailable = 0
        except ExchangeError as exc:
            if exc.info.http_status == 503:
                # One 503 is a failed request (retry with backoff, binance-futures.md §8.1); maintenance answers
                # every request with it: only several in a row count.
                self._unavailable += 1
                if self._unavailable >= UNAVAILABLE_READS:
                    self.schedule.observe_unavailable(self.clock.now_ms())
            elif not_sent(exc):
                self._quiet_until = time.monotonic() + QUIET_S
            else:
                log.warning("market watch: server time: %s", exc)

    async def refresh_volume(self) -> None:
        self._last_volume = time.monotonic()
        for pair in self.pairs:
            if time.monotonic() < self._quiet_until:
                return
            try:
                self.volume[pair] = await self.client.fetch_quote_volume_24h(pair)
            except ExchangeError as exc:
                if not_sent(exc):
                    self._quiet_until = time.monotonic() + QUIET_S
                log.warning("market watch: %s 24 h volume: %s", pair, exc)

    def book(self, pair: str) -> LocalOrderBook | None:
        stream = self.depth.get(pair)
        return stream.book if stream is not None and stream.book.synced else None

    # -- deciding ---------------------------------------------------------------------------------------------
    async def evaluate(self) -> None:
        now_ms = self.clock.now_ms()
        state, change = self.schedule.transition(now_ms)
        self.maintenance = state
        if change == "blocked":
            self._act("entries_blocked", state.reason, None, "maintenance", state.values())
        elif change == "ended":
            self._act("entries_resumed", "exchange maintenance over: account re-read", None, "maintenance",
                      {"phase": "ended"})
            await self._resync()
        for pair in self.pairs:
            book = self.book(pair)
            volume = self.volume.get(pair)
            if book is None or not volume:
                continue
            reading, old = self.tracker.update(assess_book(pair, book, volume, self.rules), time.monotonic())
            self.readings[pair] = reading
            if reading.tier != old:
                self._act(_TIER_ACTIONS[reading.tier], reading.reason, pair, "liquidity", reading.as_dict())
            if reading.close_positions and (pair not in self.closing or self.closing[pair].done()):
                self.closing[pair] = asyncio.get_running_loop().create_task(self._staged_close(pair))

    def verdict(self, pair: str, at_ms: int) -> MarketVerdict:
        """At ``at_ms`` or the exchange's clock now, whichever is later: a bar's close time lags (no bars arrive
        during a window at all), and a live decision acts now."""
        state = self.schedule.state(max(at_ms, self.clock.now_ms()))
        if not state.entries_allowed:
            return MarketVerdict(0.0, "maintenance", state.values())
        reading = self.readings.get(pair)
        if reading is not None and reading.size_multiplier < 1:
            return MarketVerdict(reading.size_multiplier, "liquidity", reading.as_dict())
        return ALLOW

    def entry(self, pair: str, at_ms: int) -> MarketVerdict:
        """The gate (trader/risk/gate.MarketGate)."""
        return self.verdict(pair, at_ms)

    def refusal(self, pair: str) -> MarketVerdict | None:
        """A block at the exchange's clock now (None: entries allowed, perhaps smaller)."""
        verdict = self.verdict(pair, 0)
        return verdict if verdict.factor <= 0 else None

    def snapshot(self) -> dict[str, Any]:
        """For /risk and /execution: each pair's tier and numbers, and the maintenance state."""
        now = self.clock.now_ms()
        nxt = self.schedule.next_window(now)
        return {
            "liquidity": {p: (r.as_dict() if (r := self.readings.get(p)) is not None else None) for p in self.pairs},
            # Why a pair has no reading: its local book is not in sync yet, or its 24 h volume is unknown.
            "missing": {p: "book" if self.book(p) is None else "volume" for p in self.pairs if p not in self.readings},
            "maintenance": {"phase": self.maintenance.phase.value, "reason": self.maintenance.reason,
                            "next": nxt.as_dict() if nxt is not None else None, "lead_min": self.schedule.lead_ms // 60_000},
            "closing": sorted(p for p, t in self.closing.items() if not t.done()),
        }

    # -- acting -----------------------------------------------------------------------------------------------
    def _act(self, action: str, reason: str, pair: str | None, rule: str, values: dict[str, Any]) -> None:
        event = RiskAction(action=action, reason=reason, pair=pair, rule=rule, values=dict(values))
        self.actions.append(event)
        log.warning("risk: %s %s (%s)", action, pair or "", reason)
        self.bus.publish(event)

    async def _resync(self) -> None:
        desk = self.desk
        if desk is None:
            return
        try:
            await desk.resync()  # also re-places any missing stop
        except ExchangeError as exc:  # the exchange may still be coming back: the periodic check catches up
            log.warning("market watch: resync after maintenance: %s", exc)

    async def _staged_close(self, pair: str) -> None:
        desk = self.desk
        if desk is None:
            return
        stages = max(1, self.options.close_stages)
        for stage in range(stages):
            reading = self.readings.get(pair)
            if reading is None or reading.tier is not Tier.SEVERE:
                return  # liquidity came back: the rest stays open under its stop
            size: Decimal = desk.positions[pair][0]
            if size == 0:
                return
            left = stages - stage
            qty = desk.close_part_qty(pair, abs(size) / left if left > 1 else abs(size))
            if qty <= 0:
                qty = abs(size)
            self._act("liquidity_close", reason=f"{reading.reason}: part {stage + 1} of {stages}", pair=pair,
                      rule="liquidity", values={**reading.as_dict(), "stage": stage + 1, "stages": stages,
                                                "quantity": str(qty)})
            await desk.close_part(pair, qty, "liquidity")
            if stage + 1 < stages:
                await asyncio.sleep(self.options.close_stage_s / max(self.clock.rate, 1.0))


@dataclass(frozen=True)
class MarketSettings:
    """What the engine's desk needs to run the market side (built from the config by ``market_settings``)."""

    liquidity: LiquidityRules
    lead_ms: int
    windows: tuple[Any, ...]  # MaintenanceWindow, configured by hand (Binance's announcements)
    options: MarketOptions
    execution: Any  # trader.execution.optimiser.ExecutionRules
    depth: bool = True  # keep local order books (off: no liquidity tiers, every order whole at market)

    def schedule(self) -> MaintenanceSchedule:
        return MaintenanceSchedule(lead_ms=self.lead_ms, configured=list(self.windows))


def market_settings(settings: Any) -> MarketSettings:
    """From the configuration: ``risk.liquidity``, ``risk.maintenance`` and ``execution``."""
    from trader.execution.optimiser import ExecutionRules

    liq = settings.risk.liquidity
    maint = settings.risk.maintenance
    windows = parse_windows([{"start": w.start, "end": w.end, "title": w.title} for w in maint.windows])
    return MarketSettings(
        liquidity=LiquidityRules.from_config(liq), lead_ms=maint.lead_minutes * 60_000, windows=tuple(windows),
        options=MarketOptions(poll_s=float(maint.poll_seconds), close_stages=liq.close_stages,
                              close_stage_s=liq.close_stage_seconds),
        execution=ExecutionRules.from_settings(settings))


MARKET_RULES = ("liquidity", "maintenance")


def audit_market_actions(bus: EventBus, audit: Any, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Keep every market-side decision (a ``RiskAction`` whose rule is liquidity or maintenance: a tier change,
    an entry refused, a part of a staged close, a window's start and end) in ``audit`` (an AuditLog), with its
    numbers, written from ``loop`` in a worker thread. Returns the unsubscribe function."""
    from trader.persistence.audit import Actor

    actor = Actor("engine", None, "risk")

    async def on_event(event: Any) -> None:
        if not isinstance(event, RiskAction) or event.rule not in MARKET_RULES:
            return
        arguments = {"rule": event.rule, "pair": event.pair, **{f"v_{k}": v for k, v in event.values.items()}}
        outcome = "refused" if event.action in ("entry_refused", "entries_blocked") else "ok"
        try:
            await asyncio.to_thread(audit.record, actor, event.action, arguments, outcome, event.reason[:500])
        except Exception:  # the audit failing must not take the notification path with it
            log.exception("market-side decision not audited")

    return bus.subscribe_on_loop(loop, on_event)
