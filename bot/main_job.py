"""The main job (`bsmart run`): the composition root that wires the engine's parts and runs until told to stop.

Today it opens storage (migrated), redacted logging, health monitoring and the metrics endpoint, and records
its start and stop in RuntimeState. The trading engine and the Telegram bot join here as they are built.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from trader.bootstrap import open_core
from trader.config.schema import Settings
from trader.logging_setup import PERFORMANCE_LOGGER
from trader.monitoring.health import HealthMonitor
from trader.monitoring.metrics import make_metrics, serve_metrics
from trader.persistence.types import utcnow

log = logging.getLogger("bsmart.main")
perf = logging.getLogger(PERFORMANCE_LOGGER)

HEARTBEAT_S = 30.0


async def run_main_job(
    settings: Settings,
    stop: asyncio.Event,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    on_ready: Callable[[dict[str, object]], None] | None = None,
) -> int:
    core = open_core(settings)
    server = None
    try:
        health = HealthMonitor(core.engine, settings.user_data_dir)
        metrics = make_metrics(settings.dry_run)
        info: dict[str, object] = {"db": core.engine.url.render_as_string(hide_password=True)}
        if settings.metrics.enabled:
            server, port = serve_metrics(metrics, settings.metrics.host, settings.metrics.port)
            info["metrics"] = f"http://{settings.metrics.host}:{port}/metrics"
        core.runtime_state.set("last_start", utcnow().isoformat(), updated_by="bsmart run")
        mode = "dry-run" if settings.dry_run else "LIVE"
        log.info(
            "bsmart started: %s, %s margin, leverage %dx, pairs %s, database %s, metrics %s",
            mode,
            settings.margin_mode,
            settings.leverage,
            ", ".join(settings.pair_whitelist),
            info["db"],
            info.get("metrics", "off"),
        )
        if on_ready:
            on_ready(info)
        while not stop.is_set():
            snapshot = health.snapshot()
            metrics.observe(snapshot)
            perf.info(
                "health ok=%s db_latency_ms=%.2f disk_free_mb=%d uptime_s=%.0f",
                snapshot.ok,
                snapshot.db_latency_ms or -1,
                snapshot.disk_free_bytes // 2**20,
                snapshot.uptime_s,
            )
            if not snapshot.ok:
                log.error("health check failed: db_ok=%s %s", snapshot.db_ok, snapshot.db_error)
            try:
                await asyncio.wait_for(stop.wait(), timeout=heartbeat_s)
            except TimeoutError:
                pass
        log.info("stop requested; shutting down")
        core.runtime_state.set("last_stop", utcnow().isoformat(), updated_by="bsmart run")
        return 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        core.close()
        log.info("bsmart stopped cleanly")


def run_until_signal(settings: Settings) -> int:
    """Run the main job in this thread's event loop; SIGINT (Ctrl-C) and SIGTERM (docker stop) end it cleanly."""

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_main_job(settings, stop)

    return asyncio.run(_main())
