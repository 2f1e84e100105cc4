"""Account-level protection that runs beside the engine, on the service's loop.

- Latency tiers (risk-rules.md): at "no entries" and above, entries are paused; back below, they resume unless a
  user paused them; at "emergency" the configured action runs (flatten by default), once per escalation. The tier
  itself rises at once and falls once its evidence is a hold time old (trader.exchange.latency); the guard
  re-evaluates it while it is raised, so it falls even when few requests are made.
- Liquidation warnings: a position whose mark is closer to its liquidation price than the warning distance
  publishes a LiquidationWarning, at most once per pair per quiet period.
- Funding: settlements the exchange booked (income FUNDING_FEE) are stored as FundingPayment rows and added to the
  open trade of that pair, so PnL is net of funding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Literal

from trader.events import EventBus, LatencyTierChanged, LiquidationWarning, RiskAction
from trader.exchange.errors import ExchangeError
from trader.exchange.latency import LatencyMonitor, LatencyTier
from trader.persistence.audit import Actor
from trader.service.funding import sync_funding
from trader.service.service import TradingService

log = logging.getLogger(__name__)
GUARD = Actor("engine", None, "risk")


class LatencyGuard:
    """Turns latency tier changes into actions. ``on_tier_change`` may be called from any thread.

    Tier changes are applied one at a time, in order, on the service's loop. The emergency action runs once per
    escalation: on entering the emergency tier, not again while it lasts (several clients, or the flatten's own slow
    requests, may report the same emergency again); only after the tier has come back below emergency can it run
    again. While the tier is above normal the guard re-evaluates it every ``tick_s`` (``LatencyMonitor.refresh``),
    so that it falls, and entries resume, even when almost no requests are made.
    """

    def __init__(
        self,
        service: TradingService,
        bus: EventBus,
        loop: asyncio.AbstractEventLoop,
        emergency_action: Literal["flatten", "block_entries"] = "flatten",
        *,
        monitors: Callable[[], Iterable[LatencyMonitor]] | None = None,
        tick_s: float = 1.0,
    ):
        self.service = service
        self.bus = bus
        self.loop = loop
        self.emergency_action = emergency_action
        self.blocked = False  # entries paused by this guard (not by a user)
        self.risk_scale = 1.0
        self.actions: list[str] = []
        self.tier = LatencyTier.NORMAL  # the tier last applied
        self.emergency_runs = 0
        self._emergency_active = False  # the emergency action ran for the current escalation
        self._monitors = monitors or (lambda: [self.service.client.latency])
        self.tick_s = tick_s
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None

    def on_tier_change(self, old: LatencyTier, new: LatencyTier) -> None:
        self.bus.publish(LatencyTierChanged(old=old.name.lower(), new=new.name.lower(), p99_ms=self._p99(old, new)))
        asyncio.run_coroutine_threadsafe(self.apply(new), self.loop)

    def _p99(self, old: LatencyTier, new: LatencyTier) -> float | None:
        """The p99 that decided this change (None when the tier fell for lack of recent round trips)."""
        for monitor in self._monitors():
            change = getattr(monitor, "last_change", None)
            if change is not None and (change.old, change.new) == (old, new):
                return change.p99_ms
        stats = [m.rest_stats().p99_ms for m in self._monitors()]
        return max((p for p in stats if p is not None), default=None)

    async def apply(self, tier: LatencyTier) -> None:
        async with self._lock:
            # The highest tier any watched monitor is in: one client's fall does not end another's emergency.
            await self._apply(max([LatencyTier(tier), *(m.tier for m in self._monitors())]))
        if self.tier > LatencyTier.NORMAL:
            self._ensure_watch()

    async def _apply(self, tier: LatencyTier) -> None:
        self.tier = tier
        engine = self.service.engine
        # Safe mode (and above): new entries take half their usual risk until latency is normal again.
        scale = 1.0 if tier is LatencyTier.NORMAL else 0.5
        if scale != self.risk_scale:
            self.risk_scale = scale
            setter = getattr(engine, "set_risk_scale", None)
            if setter is not None:
                setter(scale)
            self._act("size_halved" if scale < 1 else "size_restored", f"latency tier {tier.name.lower()}")
        if tier >= LatencyTier.NO_ENTRIES and not self.blocked:
            self.blocked = True
            if engine is not None:
                engine.pause_entries("latency")
            self._act("entries_blocked", f"latency tier {tier.name.lower()}")
        elif tier < LatencyTier.NO_ENTRIES and self.blocked:
            self.blocked = False
            if engine is not None and not self.service.paused:  # a user's pause outlives the latency episode
                engine.resume_entries()
            self._act("entries_resumed", f"latency tier {tier.name.lower()}")
        if tier is not LatencyTier.EMERGENCY:
            self._emergency_active = False
            return
        if self._emergency_active:
            return  # this escalation was acted on already
        self._emergency_active = True
        self.emergency_runs += 1
        if self.emergency_action == "flatten":
            self._act("emergency_flatten", "latency above the emergency threshold")
            report = await self.service.flatten(GUARD)
            if not report.flat:
                log.error("emergency flatten left positions: %s", report.leftovers)
        else:
            self._act("emergency_block", "latency above the emergency threshold; positions kept")

    def _ensure_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = self.loop.create_task(self._watch_tier(), name="latency-guard-watch")

    async def _watch_tier(self) -> None:
        """Re-evaluate the tier while it is raised; the monitors announce a fall through ``on_tier_change``. If
        an announcement was missed (several monitors, threads), apply what the monitors say now."""
        while self.tier > LatencyTier.NORMAL:
            await asyncio.sleep(self.tick_s)
            try:
                current = max((m.refresh() for m in self._monitors()), default=LatencyTier.NORMAL)
            except Exception:  # a watcher must outlive one failed evaluation
                log.exception("latency guard: tier re-evaluation failed")
                continue
            await asyncio.sleep(0)  # let an announced change be applied first
            if current != self.tier and not self._lock.locked():
                async with self._lock:
                    await self._apply(current)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    def _act(self, action: str, reason: str) -> None:
        self.actions.append(action)
        log.warning("risk: %s (%s)", action, reason)
        self.bus.publish(RiskAction(action=action, reason=reason))


class AccountMonitor:
    """Liquidation warnings and funding bookkeeping, polled on the service's loop."""

    def __init__(
        self,
        service: TradingService,
        bus: EventBus,
        *,
        warn_distance: Decimal = Decimal("0.05"),
        quiet_s: float = 600.0,
    ):
        self.service = service
        self.bus = bus
        self.warn_distance = warn_distance
        self.quiet_s = quiet_s
        self._warned: dict[str, float] = {}

    async def check_liquidation(self) -> list[LiquidationWarning]:
        now = time.monotonic()
        warnings = []
        for pos in await self.service.positions():
            if pos.liquidation_distance is None or pos.liquidation_distance >= self.warn_distance:
                continue
            if now - self._warned.get(pos.pair, -1e18) < self.quiet_s:
                continue
            self._warned[pos.pair] = now
            event = LiquidationWarning(pair=pos.pair, mark_price=pos.mark_price or Decimal(0),
                                       liquidation_price=pos.liquidation_price or Decimal(0),
                                       distance=pos.liquidation_distance)
            self.bus.publish(event)
            warnings.append(event)
        return warnings

    async def sync_funding(self, since_ms: int | None = None) -> int:
        """Store new funding settlements (trader.service.funding); returns how many were added."""
        return await sync_funding(self.service.client, self.service.core.sessions, since_ms)

    async def run(self, stop: asyncio.Event, interval_s: float = 30.0) -> None:
        while not stop.is_set():
            for job in (self.check_liquidation, self.sync_funding):
                try:
                    await job()
                except (ExchangeError, Exception) as exc:  # a monitor must outlive any one failed poll
                    log.warning("account monitor %s: %s", job.__name__, exc)
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except asyncio.TimeoutError:
                pass

