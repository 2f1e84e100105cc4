"""The latency guard (issue 11, finding 3): the emergency action runs once per escalation, the tier comes back
down after the hold even when no requests are made, and what users read names the p99 and who acted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from bot.i18n import Catalogs
from bot.telegram.notifier import render
from trader.events import EngineStateChanged, EventBus, LatencyTierChanged, RiskAction
from trader.exchange.latency import LatencyMonitor, LatencyTier
from trader.service.monitors import LatencyGuard


class Clock:
    def __init__(self, t: float = 10_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_entries(self, reason: str = "paused") -> None:
        self.calls.append("pause" if reason == "paused" else f"pause {reason}")

    def resume_entries(self) -> None:
        self.calls.append("resume")

    def set_risk_scale(self, scale: float) -> None:
        self.calls.append(f"scale {scale}")


class FakeService:
    def __init__(self, monitor: LatencyMonitor):
        self.engine = FakeEngine()
        self.paused = False
        self.client = SimpleNamespace(latency=monitor)
        self.flattens = 0

    async def flatten(self, actor):  # the real one takes seconds at 2 s a request
        self.flattens += 1
        await asyncio.sleep(0.05)
        return SimpleNamespace(flat=True, leftovers=[])


async def _settle(guard: LatencyGuard) -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)
    while guard._lock.locked():
        await asyncio.sleep(0.01)


@pytest.fixture
def world():
    clock = Clock()
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    engine_monitor = LatencyMonitor(hold_s=60, clock=clock)
    service_monitor = LatencyMonitor(hold_s=60, clock=clock)
    service = FakeService(service_monitor)
    return SimpleNamespace(clock=clock, bus=bus, events=events, service=service, engine_monitor=engine_monitor,
                           service_monitor=service_monitor)


async def test_the_emergency_flatten_runs_once_when_the_emergency_is_reported_twice(world) -> None:
    """Issue 11: the engine's client and then the flatten's own (service) client each reported the emergency, and
    the flatten ran twice, 2 s apart."""
    guard = LatencyGuard(world.service, world.bus, asyncio.get_running_loop())
    guard.on_tier_change(LatencyTier.NORMAL, LatencyTier.EMERGENCY)
    await _settle(guard)
    guard.on_tier_change(LatencyTier.NORMAL, LatencyTier.EMERGENCY)  # a second client, the same escalation
    await _settle(guard)
    assert world.service.flattens == 1
    assert guard.actions.count("emergency_flatten") == 1 and guard.actions.count("entries_blocked") == 1
    await guard.stop()


async def test_one_flatten_per_escalation_across_monitors_and_again_after_recovery(world) -> None:
    loop = asyncio.get_running_loop()
    monitors = [world.engine_monitor, world.service_monitor]
    guard = LatencyGuard(world.service, world.bus, loop, monitors=lambda: monitors, tick_s=0.01)
    for m in monitors:
        m._on_change = guard.on_tier_change
    world.engine_monitor.record_rest("GET /fapi/v3/positionRisk", 2062.0)
    await _settle(guard)
    world.clock.t += 2
    world.service_monitor.record_rest("DELETE /fapi/v1/allOpenOrders", 2062.0)  # the flatten's own slow request
    await _settle(guard)
    assert world.service.flattens == 1 and guard.tier is LatencyTier.EMERGENCY
    # One monitor's fall does not end the other's emergency.
    world.clock.t += 57  # the engine's slow request began 61 s ago, the service's 59 s ago
    world.engine_monitor.refresh()
    await _settle(guard)
    assert guard.tier is LatencyTier.EMERGENCY and guard.blocked
    world.clock.t += 2
    await _settle(guard)  # the watcher refreshes the monitors: both are past their hold now
    assert guard.tier is LatencyTier.NORMAL and not guard.blocked
    assert world.service.engine.calls[-1] == "resume"
    # A new escalation acts again.
    world.engine_monitor.record_rest("GET /fapi/v3/account", 1500.0)
    await _settle(guard)
    assert world.service.flattens == 2
    await guard.stop()


async def test_the_tier_comes_back_within_the_hold_with_no_requests_at_all(world) -> None:
    """Issue 11: 70 s and 8 minutes after the spikes, /status still said emergency with the stale p99."""
    monitor = world.service_monitor
    guard = LatencyGuard(world.service, world.bus, asyncio.get_running_loop(), "block_entries", tick_s=0.01)
    monitor._on_change = guard.on_tier_change
    for _ in range(3):
        monitor.record_rest("GET /fapi/v3/account", 2062.0)
    await _settle(guard)
    assert guard.blocked and guard.actions[-1] == "emergency_block"
    rise = next(e for e in world.events if isinstance(e, LatencyTierChanged))
    assert rise.new == "emergency" and rise.p99_ms == pytest.approx(2062)  # not "p99 -"
    world.clock.t += 30
    await _settle(guard)
    assert guard.blocked  # within the hold
    world.clock.t += 31  # past the hold; not one request since the spikes
    await _settle(guard)
    assert not guard.blocked and guard.tier is LatencyTier.NORMAL and guard.actions[-1] == "entries_resumed"
    fall = [e for e in world.events if isinstance(e, LatencyTierChanged)][-1]
    assert (fall.old, fall.new, fall.p99_ms) == ("emergency", "normal", None)
    assert monitor.rest_stats().p99_ms is None  # /status shows no stale 2062 ms
    assert guard._watch is None or guard._watch.done()  # the watcher ends with the episode
    await guard.stop()


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_notifications_name_the_p99_and_the_actor(language: str) -> None:
    t = Catalogs().translator(language)
    rise = render(t, LatencyTierChanged(old="normal", new="emergency", p99_ms=2062.4))
    assert "2062 ms" in rise and " -" not in rise
    fall = render(t, LatencyTierChanged(old="emergency", new="normal", p99_ms=None))
    assert "p99 -" not in fall and "-)" not in fall and "-）" not in fall
    paused = render(t, EngineStateChanged(state="paused", actor=""))
    assert "by -" not in paused and "-)" not in paused and t("event.actor.system") in paused
    assert t("event.actor.user_id", id=7) in render(t, EngineStateChanged(state="paused", actor="telegram:7"))
    action = render(t, RiskAction(action="emergency_flatten", reason="latency above the emergency threshold"))
    assert "(-)" not in action and "（-）" not in action and t("risk.action.emergency_flatten") in action
