"""Operations beside trading in the main job: the start-up database check, health supervision with automatic
restarts, the daily backup, the hourly self-benchmark and e-mail alerts.

``bot.main_job`` calls ``prepare`` before anything opens the database (it takes the run lock, so ``bsmart restore``
knows a job is running, and checks the ledger's integrity, recovering it from the newest good backup), ``start``
once the engine and the bot are up, and ``Operations.stop`` first thing at shutdown (so the supervisor does not
"repair" components that are being stopped on purpose).

Alerts are ``HealthAlert`` events on the bus: the Telegram notifier and the e-mail route pick them up like any
other event, in each user's language.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader.config.schema import Settings
from trader.events import HealthAlert
from trader.logging_setup import PERFORMANCE_LOGGER
from trader.monitoring import checks
from trader.monitoring.email_alerts import EmailAlerts
from trader.monitoring.health import HealthMonitor
from trader.monitoring.supervisor import Component, Probe, Supervisor
from trader.ops.backup import BackupError, create_backup, list_backups, read_backup
from trader.ops.recovery import DatabaseCorrupt, Recovery, check_database
from trader.ops.runlock import LockedError, RunLock
from trader.persistence.audit import Actor
from trader.persistence.types import utcnow

log = logging.getLogger("bsmart.operations")
perf = logging.getLogger(PERFORMANCE_LOGGER)

HEALTH = Actor("health")
FIRST_BENCHMARK_S = 60.0  # the first self-benchmark runs this long after start, then every benchmark_interval_s


class StartRefused(Exception):
    """The main job must not start; the message says why and what to do."""


@dataclass
class Prepared:
    lock: RunLock
    recovery: Recovery | None = None


def prepare(settings: Settings) -> Prepared:
    """Take the run lock and check the ledger; ``StartRefused`` when another job runs or the ledger is corrupt
    with no good backup (nothing was changed then)."""
    try:
        lock = RunLock(settings.user_data_dir).acquire("bsmart run")
    except LockedError as exc:
        raise StartRefused(f"another main job or a restore is running: {exc}") from None
    try:
        recovery = check_database(settings)
    except DatabaseCorrupt as exc:
        lock.release()
        raise StartRefused(str(exc)) from None
    except BaseException:
        lock.release()
        raise
    return Prepared(lock, recovery)


def next_backup(now: dt.datetime, at: dt.time, last: dt.datetime | None, *, first: bool) -> dt.datetime:
    """When the next backup is due: at ``at`` (UTC) every day; at start also at once when the newest backup is
    older than a day (a job restarted every day before ``at`` would otherwise never back up)."""
    if first and (last is None or now - last >= dt.timedelta(days=1)):
        return now
    due = dt.datetime.combine(now.date(), at, dt.timezone.utc)
    return due if due > now else due + dt.timedelta(days=1)


@dataclass
class Operations:
    settings: Settings
    supervisor: Supervisor
    email: EmailAlerts | None = None
    router: Any = None  # bot.telegram.email_route.EmailRouter when e-mail is on
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)
    last_backup: Path | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for unsubscribe in self.unsubscribe:
            unsubscribe()
        if self.email is not None:
            await asyncio.to_thread(self.email.stop, 15.0)


def _telegram_components(app: Any) -> list[Component]:
    async def polling() -> Probe:
        if not app.running:
            return Probe("down", "the bot application is not running")
        if not app.updater.running:
            return Probe("down", "polling has stopped")
        return Probe("ok")

    async def restart_polling() -> None:
        if app.updater.running:
            await app.updater.stop()
        if not app.running:
            await app.start()
        await app.updater.start_polling()

    async def api() -> Probe:
        await app.bot.get_me()
        return Probe("ok")

    # The API's reachability has no restart: restarting polling cannot fix Telegram or the network.
    return [Component("bot", polling, restart_polling), Component("telegram", api)]


def build_supervisor(runtime: Any, publish: Callable[[str, str, str], None]) -> Supervisor:
    settings: Settings = runtime.settings
    health = settings.health
    run_on_service = checks.on_loop(runtime.host.loop)

    async def restart_engine() -> None:
        await run_on_service(runtime.control.restart())
        await asyncio.to_thread(runtime.core.audit.record, HEALTH, "engine_restart", {}, "ok",
                                "restarted by the health supervisor")

    resources = checks.ResourceWatch(settings.user_data_dir, health.resource_warning)
    components = [
        checks.exchange_component(runtime.service.client, run_on_service),
        checks.streams_component(checks.StreamWatch(runtime.control, health.stale_bars), restart_engine),
        checks.engine_component(runtime.control, lambda: bool(runtime.core.runtime_state.get("stopped", False)),
                                restart_engine),
        checks.database_component(HealthMonitor(runtime.core.engine, settings.user_data_dir), runtime.core.engine),
        checks.disk_component(settings.user_data_dir, health.resource_warning),
        resources.component(),
    ]
    if runtime.app is not None:
        components += _telegram_components(runtime.app)
    supervisor = Supervisor(components, publish, max_restarts_per_hour=health.max_restarts_per_hour,
                            timeout_s=health.check_timeout_s)

    def keep_sample(use: Any) -> None:  # the report shows the latest resource sample
        supervisor.resources = use

    resources.on_sample = keep_sample
    return supervisor


async def _supervise(ops: Operations) -> None:
    await ops.supervisor.run(ops.stop_event, ops.settings.health.interval_s)


async def _backups(ops: Operations, config_path: Path | None, publish: Callable[[str, str, str], None]) -> None:
    settings = ops.settings
    first = True
    while not ops.stop_event.is_set():
        found = list_backups(settings.backups_dir)
        last = None
        if found:
            with contextlib.suppress(BackupError):
                last = read_backup(found[-1]).created_at
        now = utcnow()
        due = next_backup(now, settings.backup.time, last, first=first)
        first = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ops.stop_event.wait(), max((due - now).total_seconds(), 0.0))
            return
        try:
            backup = await asyncio.to_thread(create_backup, settings, config_path)
            ops.last_backup = backup.path
        except (BackupError, OSError) as exc:
            log.error("daily backup failed: %s", exc)
            publish("backup", "failed", str(exc))


async def _benchmarks(ops: Operations, runtime: Any, first_delay_s: float) -> None:
    interval = ops.settings.health.benchmark_interval_s
    run_on_service = checks.on_loop(runtime.host.loop)
    delay = first_delay_s
    while not ops.stop_event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ops.stop_event.wait(), delay)
            return
        delay = interval
        bench = await checks.self_benchmark(lambda: run_on_service(runtime.service.client.fetch_balance()),
                                            runtime.core.engine)
        ops.supervisor.benchmark = bench
        perf.info("benchmark signed_rest_ms=%.1f ledger_write_ms=%.1f%s", bench.rest_ms or -1,
                  bench.ledger_write_ms or -1, f" error={bench.error}" if bench.error else "")


def _telegram_ok(runtime: Any, supervisor: Supervisor) -> Callable[[], bool]:
    names = {c.name for c in supervisor.components}

    def ok() -> bool:
        app = runtime.app
        if app is None or not app.running:
            return False
        from bot.telegram.context import DEPS_KEY

        notifier = app.bot_data[DEPS_KEY].notifier
        if notifier is not None and notifier.failing:
            return False
        return "telegram" not in names or supervisor.state_of("telegram") != "down"

    return ok


async def start(runtime: Any, prepared: Prepared, config_path: Path | None = None, *,
                benchmark_first_delay_s: float = FIRST_BENCHMARK_S) -> Operations:
    """Everything after the engine and the bot are up: e-mail, supervisor, backups, benchmark, and the notice of a
    database recovery made by ``prepare``."""
    settings: Settings = runtime.settings

    def publish(component: str, state: str, detail: str) -> None:
        runtime.bus.publish(HealthAlert(component=component, state=state, detail=detail))

    ops = Operations(settings, build_supervisor(runtime, publish))
    if settings.email.enabled:
        from bot.i18n import catalogs
        from bot.telegram.email_route import EmailRouter

        ops.email = EmailAlerts(settings.email, runtime.core.redactor).start()
        ops.router = EmailRouter(settings, ops.email, catalogs(), _telegram_ok(runtime, ops.supervisor))
        ops.unsubscribe.append(runtime.bus.subscribe(ops.router.on_event))
    if runtime.app is not None:
        from bot.telegram.context import DEPS_KEY

        deps = runtime.app.bot_data[DEPS_KEY]
        deps.extras["health"] = ops.supervisor
        if deps.notifier is not None and ops.router is not None:
            deps.notifier.on_undelivered = ops.router.undelivered
    ops.tasks.append(asyncio.create_task(_supervise(ops), name="health-supervisor"))
    if settings.backup.enabled:
        ops.tasks.append(asyncio.create_task(_backups(ops, config_path, publish), name="daily-backup"))
    if settings.health.benchmark_interval_s:
        ops.tasks.append(asyncio.create_task(_benchmarks(ops, runtime, benchmark_first_delay_s),
                                             name="self-benchmark"))
    if prepared.recovery is not None:
        publish("database", "restored", prepared.recovery.describe())
    return ops
