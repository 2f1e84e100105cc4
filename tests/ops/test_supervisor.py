"""The supervisor's rules (restart within a limit, then alert and stop trying; stuck probes; recovery), the trading
side's probes on stand-ins with the engine's real interface, resource sampling from a fake /proc, and the backup
schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.operations import next_backup
from trader.monitoring.checks import ResourceWatch, StreamWatch, engine_component
from trader.monitoring.resources import ResourceSampler
from trader.monitoring.supervisor import Component, Probe, Supervisor

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class Flaky:
    """A component that is down until restarted ``heals_after`` times."""

    def __init__(self, heals_after: int | None) -> None:
        self.heals_after = heals_after
        self.restarts = 0

    async def probe(self) -> Probe:
        healed = self.heals_after is not None and self.restarts >= self.heals_after
        return Probe("ok") if healed else Probe("down", "thread ended")

    async def restart(self) -> None:
        self.restarts += 1


def supervisor_for(*components: Component, limit: int = 3, timeout_s: float = 1.0):
    alerts: list[tuple[str, str, str]] = []
    clock = Clock()
    sup = Supervisor(list(components), lambda c, s, d: alerts.append((c, s, d)), max_restarts_per_hour=limit,
                     timeout_s=timeout_s, clock=clock)
    return sup, alerts, clock


async def test_a_dead_component_is_restarted_and_its_recovery_reported() -> None:
    flaky = Flaky(heals_after=1)
    sup, alerts, _ = supervisor_for(Component("engine", flaky.probe, flaky.restart))
    await sup.check()
    assert flaky.restarts == 1 and alerts == [("engine", "restarted", "thread ended")]
    summary = await sup.check()
    assert alerts[-1] == ("engine", "recovered", "")
    assert summary.ok and summary.restarts_24h == 1 and summary.restarts_by_component == {"engine": 1}


async def test_restarts_stop_at_the_hourly_limit_with_one_alert_then_resume_after_the_hour() -> None:
    flaky = Flaky(heals_after=None)  # never heals
    sup, alerts, clock = supervisor_for(Component("engine", flaky.probe, flaky.restart), limit=2)
    for _ in range(6):
        await sup.check()
        clock.now += dt.timedelta(minutes=1)
    assert flaky.restarts == 2
    assert [a[1] for a in alerts] == ["restarted", "restarted", "gave_up"]
    assert "2 restarts in the past hour" in alerts[-1][2]
    assert sup.summary().components[0].gave_up
    # Recovered by hand later: the limit applies afresh to the next failure.
    flaky.heals_after = 0
    await sup.check()
    assert alerts[-1][1] == "recovered" and not sup.summary().components[0].gave_up
    flaky.heals_after = None
    clock.now += dt.timedelta(hours=1)
    await sup.check()
    assert flaky.restarts == 3 and alerts[-1][1] == "restarted"


async def test_components_restarting_the_same_thing_share_its_limit() -> None:
    a, b = Flaky(None), Flaky(None)
    sup, alerts, _ = supervisor_for(Component("engine", a.probe, a.restart, restart_group="engine"),
                                    Component("streams", b.probe, b.restart, restart_group="engine"), limit=3)
    await sup.check()
    await sup.check()
    assert (a.restarts, b.restarts) == (2, 1)  # 3 engine restarts in all, whoever asked
    assert [(c, s) for c, s, _ in alerts][-1] == ("streams", "gave_up")


async def test_a_stuck_probe_counts_as_down_and_a_failed_restart_is_reported() -> None:
    async def hangs() -> Probe:
        await asyncio.sleep(10)
        return Probe("ok")

    async def broken_restart() -> None:
        raise RuntimeError("cannot")

    sup, alerts, _ = supervisor_for(Component("exchange", hangs), Component("bot", hangs, broken_restart),
                                    timeout_s=0.05)
    summary = await sup.check()
    assert [c.state for c in summary.components] == ["down", "down"]
    assert ("exchange", "down", "no answer within 0.05s (stuck)") in alerts
    assert any(c == "bot" and s == "restart_failed" and "RuntimeError: cannot" in d for c, s, d in alerts)
    await sup.check()
    assert [a for a in alerts if a[0] == "exchange"] == [("exchange", "down", "no answer within 0.05s (stuck)")]


async def test_warnings_alert_once_per_episode() -> None:
    level = {"state": "warning"}

    async def probe() -> Probe:
        return Probe(level["state"], "CPU 93%")  # type: ignore[arg-type]

    sup, alerts, _ = supervisor_for(Component("resources", probe))
    await sup.check()
    await sup.check()
    level["state"] = "ok"
    await sup.check()
    assert [a[1] for a in alerts] == ["warning", "recovered"]


# -- the trading side's probes --------------------------------------------------------------------------------------

@dataclass
class FakeHost:
    running: bool = True


@dataclass
class FakeStatus:
    last_bar_ms: dict[str, int | None]
    started_at: float | None = 1.0


@dataclass
class FakeEngine:
    state: str = "running"
    errors: list[str] = field(default_factory=list)
    host: FakeHost = field(default_factory=FakeHost)
    tf_ms: int = 60_000
    bars: dict[str, int | None] = field(default_factory=lambda: {"BTC/USDT:USDT": 0, "ETH/USDT:USDT": 0})

    def status(self) -> FakeStatus:
        return FakeStatus(dict(self.bars))


@dataclass
class FakeControl:
    engine: FakeEngine | None = None


async def test_engine_probe_states() -> None:
    control, stopped = FakeControl(FakeEngine()), {"value": False}

    async def restart() -> None:
        pass

    probe = engine_component(control, lambda: stopped["value"], restart).probe
    assert (await probe()).state == "ok"
    control.engine.state, control.engine.errors = "error", ["strategy thread failed: ZeroDivisionError()"]
    assert await probe() == Probe("down", "failed: strategy thread failed: ZeroDivisionError()")
    control.engine = FakeEngine(host=FakeHost(running=False))
    assert (await probe()).detail == "the engine's loop thread has ended"
    control.engine = None
    assert (await probe()).state == "down"
    stopped["value"] = True  # a user's stop is never undone by the supervisor
    assert await probe() == Probe("off", "stopped by a user")


async def test_a_stream_without_new_bars_for_stale_bars_timeframes_is_stuck() -> None:
    engine = FakeEngine()
    wall = {"t": 0.0}
    watch = StreamWatch(FakeControl(engine), stale_bars=3, clock=lambda: wall["t"])
    assert (await watch.probe()).state == "ok"
    wall["t"] = 200.0
    engine.bars["BTC/USDT:USDT"] = 60_000  # BTC moves on, ETH does not
    assert (await watch.probe()).state == "ok"  # 200 s < 3 × 60 s + 60 s grace
    wall["t"] = 241.0
    result = await watch.probe()
    assert result.state == "down" and result.detail == "ETH/USDT:USDT: no new bar for 241s"
    engine.bars["ETH/USDT:USDT"] = 60_000
    assert (await watch.probe()).state == "ok"


async def test_a_restarted_engine_starts_every_wait_afresh() -> None:
    engine = FakeEngine()
    wall = {"t": 0.0}
    control = FakeControl(engine)
    watch = StreamWatch(control, stale_bars=3, clock=lambda: wall["t"])
    await watch.probe()
    wall["t"] = 1000.0
    control.engine = FakeEngine()  # a new engine (after a restart): its streams get their full allowance
    assert (await watch.probe()).state == "ok"


def fake_proc(root: Path, busy: int, idle: int, rss_kb: int, total_kb: int) -> Path:
    (root / "self").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    (root / "self" / "status").write_text(f"Name:\tpython\nVmRSS:\t  {rss_kb} kB\n")
    (root / "meminfo").write_text(f"MemTotal:       {total_kb} kB\nMemFree: 1 kB\n")
    return root


async def test_resources_above_the_limit_warn(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", busy=100, idle=100, rss_kb=100, total_kb=1000)
    watch = ResourceWatch(tmp_path, 0.8, sampler=ResourceSampler(tmp_path, proc=proc, min_cpu_window_s=0))
    fake_proc(proc, busy=190, idle=110, rss_kb=100, total_kb=1000)  # 90 % busy since the last sample
    assert (await watch.probe()).state == "ok"  # one busy sample: a burst, not a problem
    fake_proc(proc, busy=280, idle=120, rss_kb=850, total_kb=1000)  # 90 % again, and RSS 85 % of RAM
    result = await watch.probe()
    assert result.state == "warning" and "CPU 90%" in result.detail and "RSS 85%" in result.detail
    assert watch.last is not None and watch.last.rss_bytes == 850 * 1024
    fake_proc(proc, busy=290, idle=220, rss_kb=100, total_kb=1000)
    assert (await watch.probe()).state == "ok"


def test_cpu_over_a_too_short_window_is_not_measured(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", busy=100, idle=100, rss_kb=100, total_kb=1000)
    sampler = ResourceSampler(tmp_path, proc=proc, min_cpu_window_s=3600)
    fake_proc(proc, busy=200, idle=100, rss_kb=100, total_kb=1000)
    assert sampler.sample().cpu is None


def test_real_proc_is_read_on_linux(tmp_path: Path) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc here")
    use = ResourceSampler(tmp_path).sample()
    assert use.rss_bytes and use.rss_bytes > 10 * 2**20 and 0 < (use.rss_share or 0) < 1
    assert use.disk_share is not None and use.disk_free_bytes


@pytest.mark.parametrize(
    ("now", "last", "first", "expected"),
    [
        (T0, None, True, T0),  # never backed up: now
        (T0, T0 - dt.timedelta(days=2), True, T0),  # stale: now
        (T0, T0 - dt.timedelta(hours=3), True, dt.datetime(2026, 11, 21, 3, 30, tzinfo=dt.timezone.utc)),
        (T0.replace(hour=1), None, False, T0.replace(hour=3, minute=30)),  # after the first: only at the time
        (T0, None, False, dt.datetime(2026, 11, 21, 3, 30, tzinfo=dt.timezone.utc)),  # a failure waits for tomorrow
    ],
)
def test_backup_schedule(now: dt.datetime, last: dt.datetime | None, first: bool, expected: dt.datetime) -> None:
    assert next_backup(now, dt.time(3, 30), last, first=first) == expected
