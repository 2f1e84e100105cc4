"""The supervisor's probes and restarts for the trading side: exchange REST, market streams, engine, database,
disk and resources; and the hourly self-benchmark of the critical path (a signed REST round trip and a committed
ledger write).

Probes only read. What runs on the service's loop (the exchange client) is handed there with ``on_loop``; what
blocks (the engine's status, the database) runs in a worker thread, so a stuck component costs a timeout, not the
supervisor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from trader.monitoring.health import HealthMonitor
from trader.monitoring.resources import ResourceSampler, ResourceUse
from trader.monitoring.supervisor import Benchmark, Component, Probe
from trader.persistence.types import utcnow

T = TypeVar("T")
STREAM_GRACE_S = 60.0  # on top of stale_bars × timeframe: a bar closes, then arrives
MIN_FREE_BYTES = 200 * 1024 * 1024  # as HealthSnapshot.ok: below this SQLite writes and log rotation start failing


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], Awaitable[T]]:
    """Run a coroutine on another thread's loop and await it here (cancelling here cancels it there)."""

    async def run(coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    return run


def exchange_component(client: Any, run: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]) -> Component:
    async def probe() -> Probe:
        t0 = time.perf_counter()
        await run(client.fetch_time())
        return Probe("ok", f"{(time.perf_counter() - t0) * 1000:.0f} ms")

    return Component("exchange", probe)  # the client reconnects by itself; a restart would change nothing


def engine_component(control: Any, user_stopped: Callable[[], bool],
                     restart: Callable[[], Awaitable[None]]) -> Component:
    """Down when it failed (error state), its loop thread ended while it claims to run, or it never started;
    off when a user (or anyone, through the service) stopped it: that is never undone here."""

    async def probe() -> Probe:
        if await asyncio.to_thread(user_stopped):
            return Probe("off", "stopped by a user")
        engine = control.engine
        if engine is None:
            return Probe("down", "not running (it did not start)")
        state = engine.state
        if state == "error":
            return Probe("down", f"failed: {engine.errors[-1] if engine.errors else 'error state'}")
        if state == "running" and not engine.host.running:
            return Probe("down", "the engine's loop thread has ended")
        if state == "stopped":
            return Probe("off", "stopped")
        return Probe("ok", state)

    return Component("engine", probe, restart, restart_group="engine")


class StreamWatch:
    """A pair's stream is stuck when its last bar has not changed for ``stale_bars`` timeframes (+ a grace), in
    wall-clock time: bar times are the exchange's (a replaying simulator's clock is not ours), so the age that
    matters is how long we have waited for the next one."""

    def __init__(self, control: Any, stale_bars: float, clock: Callable[[], float] = time.monotonic):
        self.control = control
        self.stale_bars = stale_bars
        self.clock = clock
        self._engine_key: tuple[int, float | None] | None = None
        self._seen: dict[str, tuple[int | None, float]] = {}

    async def probe(self) -> Probe:
        engine = self.control.engine
        if engine is None or engine.state != "running":
            return Probe("off", "the engine is not running")
        status = await asyncio.to_thread(engine.status)
        key = (id(engine), status.started_at)
        now = self.clock()
        if key != self._engine_key:  # a new or restarted engine: every pair starts its wait now
            self._engine_key, self._seen = key, {}
        limit = self.stale_bars * engine.tf_ms / 1000 + STREAM_GRACE_S
        stuck, waits = [], []
        for pair, last in status.last_bar_ms.items():
            previous = self._seen.get(pair)
            if previous is None or previous[0] != last:
                self._seen[pair] = (last, now)
                previous = self._seen[pair]
            waited = now - previous[1]
            waits.append(waited)
            if waited > limit:
                stuck.append(f"{pair}: no new bar for {waited:.0f}s")
        if stuck:
            return Probe("down", "; ".join(stuck))
        return Probe("ok", f"{len(waits)} pairs, longest wait {max(waits, default=0):.0f}s of {limit:.0f}s")


def streams_component(watch: StreamWatch, restart: Callable[[], Awaitable[None]]) -> Component:
    return Component("streams", watch.probe, restart, restart_group="engine")  # the streams live in the engine


def database_component(monitor: HealthMonitor, engine: Engine) -> Component:
    async def probe() -> Probe:
        snap = await asyncio.to_thread(monitor.snapshot)
        if not snap.db_ok:
            return Probe("down", snap.db_error)
        return Probe("ok", f"{snap.db_latency_ms or 0:.1f} ms")

    async def restart() -> None:
        # Drop pooled connections: the next use opens fresh ones (a connection wedged by a driver error included).
        await asyncio.to_thread(engine.dispose)

    return Component("database", probe, restart)


def disk_component(data_dir: Path, warn_share: float) -> Component:
    sampler = ResourceSampler(data_dir)

    async def probe() -> Probe:
        use = await asyncio.to_thread(sampler.sample)
        if use.disk_free_bytes is None:
            return Probe("warning", "disk usage cannot be read")
        free_mb = use.disk_free_bytes // 2**20
        if use.disk_free_bytes < MIN_FREE_BYTES:
            return Probe("down", f"only {free_mb} MB free")
        if use.disk_share is not None and use.disk_share > warn_share:
            return Probe("warning", f"{use.disk_share:.0%} used, {free_mb} MB free")
        return Probe("ok", f"{free_mb} MB free")

    return Component("disk", probe)


class ResourceWatch:
    """CPU, RSS and disk against one limit; the latest sample is kept for the report."""

    def __init__(self, data_dir: Path, warn_share: float, sampler: ResourceSampler | None = None):
        self.sampler = sampler or ResourceSampler(data_dir)
        self.warn_share = warn_share
        self.last: ResourceUse | None = None
        self.on_sample: Callable[[ResourceUse], None] | None = None
        self._cpu_was_high = False

    async def probe(self) -> Probe:
        use = self.last = await asyncio.to_thread(self.sampler.sample)
        if self.on_sample is not None:
            self.on_sample(use)
        over = use.above(self.warn_share)
        # CPU must be high on two samples running: a start-up or a backtest burst is not a problem.
        cpu_high = any(item.startswith("CPU") for item in over)
        if cpu_high and not self._cpu_was_high:
            over = [item for item in over if not item.startswith("CPU")]
        self._cpu_was_high = cpu_high
        figures = [f"{name} {value:.0%}" for name, value in (("CPU", use.cpu), ("RSS", use.rss_share),
                                                              ("disk", use.disk_share)) if value is not None]
        if over:
            return Probe("warning", f"above {self.warn_share:.0%}: {', '.join(over)}")
        return Probe("ok", ", ".join(figures))

    def component(self) -> Component:
        return Component("resources", self.probe)


async def self_benchmark(signed_call: Callable[[], Awaitable[Any]], engine: Engine) -> Benchmark:
    """Time the critical path's two legs: a signed REST request (the balance, as an order would be signed) and a
    committed write to the ledger (a no-op UPDATE of a runtime-state row, so nothing changes but the write and its
    commit happen)."""
    at = utcnow()
    errors = []
    rest_ms = write_ms = None
    t0 = time.perf_counter()
    try:
        await signed_call()
        rest_ms = (time.perf_counter() - t0) * 1000
    except Exception as exc:
        errors.append(f"REST: {type(exc).__name__}: {exc}")

    def write() -> float:
        t = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text("UPDATE runtime_state SET value = value WHERE key = 'last_start'"))
        return (time.perf_counter() - t) * 1000

    try:
        write_ms = await asyncio.to_thread(write)
    except Exception as exc:
        errors.append(f"ledger: {type(exc).__name__}: {exc}")
    return Benchmark(at, rest_ms, write_ms, "; ".join(errors))
