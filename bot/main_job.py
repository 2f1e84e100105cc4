"""The main job (`bsmart run`): the composition root that wires every part and runs until told to stop.

- Storage (migrated), redacted logging, health and the metrics endpoint.
- The exchange: Binance (or whatever exchange.api_url names), or in dry-run without an api_url the simulator,
  embedded, replaying the shipped data (``simulator`` settings), so a dry run needs no keys and no network.
- The service host: its own thread and loop with the trading service and its exchange client; the live engine
  runs on threads of its own. The bot (when telegram.enabled) runs on this thread's loop and reaches the service
  through a ServiceProxy, so neither side ever waits on the other.
- The engine starts by itself unless it was stopped by a user (RuntimeState), with entries paused if they were.
Shutdown stops the bot, then the engine (positions and their exchange-side stops stay), then the exchange side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import operations
from trader.bootstrap import Core, open_core
from trader.config.pairs import normalize_pair
from trader.config.schema import Settings
from trader.data.store import bundled_data_dir
from trader.events import EngineError, EventBus, RiskAction
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.exchange.latency import LatencyMonitor
from trader.exchange.weights import RateLimited
from trader.execution.market import audit_market_actions, market_settings
from trader.live.engine import EngineConfig, LiveEngine
from trader.live.host import EngineHost
from trader.live.orders import DeskOptions
from trader.logging_setup import PERFORMANCE_LOGGER
from trader.monitoring.exchange_meter import MeteredExchangeClient
from trader.monitoring.health import HealthMonitor
from trader.monitoring.metrics import Metrics, make_metrics, serve_metrics
from trader.monitoring.sampler import SAMPLE_S, run_sampler, service_jobs, watch_bus
from trader.persistence.audit import Actor
from trader.persistence.types import utcnow
from trader.risk.audit import audit_risk_rules
from trader.risk.limits import declared_risk_params
from trader.service.engine_control import LiveEngineControl
from trader.service.errors import ServiceError
from trader.service.monitors import AccountMonitor, LatencyGuard
from trader.service.proxy import ResearchProxy, ServiceProxy
from trader.service.research import ResearchService
from trader.service.service import TradingService
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.mirror import MarketMirror
from trader.sim.server import SimulatorServer
from trader.strategy.preflight import live_requirements
from trader.strategy.reference import STRATEGIES

log = logging.getLogger("bsmart.main")
perf = logging.getLogger(PERFORMANCE_LOGGER)

HEARTBEAT_S = 30.0
ENGINE = Actor("engine")
STARTUP_RATE_LIMIT_TRIES = 4  # a rate-limited start waits for the weight to come back this many times


class StartupError(Exception):
    """The job cannot start; the message names the cause. Nothing trades."""


@dataclass
class Runtime:
    """What the main job built (tests and the demo drive it)."""

    settings: Settings
    core: Core
    bus: EventBus
    host: EngineHost
    service: TradingService
    proxy: ServiceProxy
    control: LiveEngineControl
    sim: SimulatorServer | None = None
    app: Any = None  # the Telegram Application when the bot runs
    guard: LatencyGuard | None = None
    monitor: AccountMonitor | None = None
    monitor_task: concurrent.futures.Future[None] | None = None
    protect_task: concurrent.futures.Future[None] | None = None  # stops for positions while no engine runs
    mirror: MarketMirror | None = None  # when the simulator mirrors Binance's market
    operations: Any = None  # bot.operations.Operations once started (supervisor, backups, e-mail)
    research: ResearchService | None = None  # backtests and hyperopt in worker processes
    research_proxy: ResearchProxy | None = None
    engine_hooks: list[Callable[[LiveEngine], None]] = dataclasses.field(default_factory=list)  # each new engine
    ml: Any = None  # trader.ml.live.LivePredictions when a model is active


def _data_pairs(data_dir: Path) -> list[str]:
    stems = sorted(p.name.split("-")[0] for p in Path(data_dir).glob("*-1m-futures.parquet"))
    return [normalize_pair(stem.replace("_", "/", 1).replace("_", ":", 1)) for stem in stems]


def strategy_risk_params(settings: Settings, strategy: str | None = None) -> dict[str, Any]:
    """The config's risk section as strategy parameters (trader.risk.limits, the same mapping ``bsmart backtest
    --config`` uses), for the parameters the configured strategy (or ``strategy``) declares."""
    return declared_risk_params(settings, STRATEGIES[strategy or settings.strategy].param_values())


def live_engine_config(settings: Settings, config: EngineConfig) -> EngineConfig:
    """``config`` finished for the strategy it names (the one in force at this start, perhaps chosen with
    /strategy): the config's risk section and the parameters given, as far as that strategy declares them; the
    fusion book under user_data (fusion.json) when it keeps one; a feed history and window covering its warm-up
    (preflight.live_requirements; never below the engine's defaults). A strategy that cannot build its timeframes
    from the feed's raises TimeframeError (a ValueError)."""
    name = str(config.strategy)
    declared = STRATEGIES[name].param_values()
    params = {**strategy_risk_params(settings, name),
              **{k: v for k, v in config.strategy_params.items() if k in declared}}
    if "fusion_path" in declared and not params.get("fusion_path"):
        params["fusion_path"] = str(Path(settings.user_data_dir) / "fusion.json")
    need = live_requirements(name, params, config.timeframe)
    return dataclasses.replace(config, strategy_params=params,
                               history_bars=max(config.history_bars, need["history_bars"]),
                               window=max(config.window, need["window"]))


def _client_options(settings: Settings, sim: SimulatorServer | None) -> ClientOptions:
    ex = settings.exchange
    if sim is not None:
        return ClientOptions(api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"), api_key=DEFAULT_API_KEY,
                             secret=DEFAULT_API_SECRET, timeout_ms=ex.timeout_ms, recv_window_ms=ex.recv_window_ms)
    return ClientOptions(
        api_url=str(ex.api_url).rstrip("/") if ex.api_url else None,
        ws_url=str(ex.ws_url).rstrip("/") if ex.ws_url else None,
        api_key=ex.key.get_secret_value() if ex.key else None,
        secret=ex.secret.get_secret_value() if ex.secret else None,
        timeout_ms=ex.timeout_ms,
        recv_window_ms=ex.recv_window_ms,
        live=not settings.dry_run,
    )


def _client_factory(
    settings: Settings, options: ClientOptions, hooks: dict[str, Callable[..., None]],
    metrics: Metrics | None = None, *, wall_clock_events: bool = True,
) -> Callable[[], ExchangeClient]:
    """Every client (the service's, each engine's) measures latency; tier changes go to ``hooks["latency"]``,
    looked up when they happen, because the guard exists only once the service does. With ``metrics`` each client
    also records into them (trader.monitoring.exchange_meter)."""
    tiers = settings.risk.latency

    def tier_changed(old: Any, new: Any) -> None:
        hook = hooks.get("latency")
        if hook is not None:
            hook(old, new)

    # One monitor for every client: one tier for the process (one network path to the exchange), one announcement
    # per change, and /status reads the tier the engine acts on (issue 11: two monitors, two emergency flattens).
    latency = LatencyMonitor(tiers.safe_ms, tiers.no_entries_ms, tiers.emergency_ms, tiers.hold_seconds,
                             on_tier_change=tier_changed)

    def make() -> ExchangeClient:
        if metrics is not None:
            return MeteredExchangeClient(options, latency=latency, metrics=metrics,
                                         event_times_are_wall_clock=wall_clock_events)
        return ExchangeClient(options, latency=latency)

    return make


async def _start_simulator(
    settings: Settings, sim_overrides: dict[str, Any] | None, pairs: list[str]
) -> tuple[SimulatorServer, MarketMirror | None]:
    if settings.simulator.market == "binance":
        # Today's market from Binance's public endpoints (no keys); orders only ever reach the simulator.
        tiers = settings.risk.latency
        upstream = ExchangeClient(ClientOptions(timeout_ms=settings.exchange.timeout_ms),
                                  latency=LatencyMonitor(tiers.safe_ms, tiers.no_entries_ms, tiers.emergency_ms))
        mirror = MarketMirror(upstream, pairs)
        cfg = SimConfig(port=0, balance=settings.simulator.balance,
                        state_file=settings.user_data_dir / "simulator_state.json")
        try:
            return await mirror.start(cfg), mirror
        except BaseException:
            await upstream.close()
            raise
    data_dir = settings.simulator.data_dir or bundled_data_dir()
    cfg = SimConfig(
        port=0,
        data_dir=settings.simulator.data_dir,
        pairs=_data_pairs(data_dir),
        clock_mode="real" if settings.simulator.speed == 1 else "accelerated",
        speed=settings.simulator.speed,
        balance=settings.simulator.balance,
        state_file=settings.user_data_dir / "simulator_state.json",
    )
    for key, value in (sim_overrides or {}).items():
        setattr(cfg, key, value)
    return await SimulatorServer(cfg).start(), None


def build_runtime(settings: Settings, *, sim_overrides: dict[str, Any] | None = None,
                  metrics: Metrics | None = None, console_logging: bool = True) -> Runtime:
    """Open storage, the exchange side and the service; the engine is built but not started."""
    core = open_core(settings, console_logging=console_logging)
    bus = EventBus()
    host = EngineHost("bsmart-service").start()
    sim: SimulatorServer | None = None
    mirror: MarketMirror | None = None
    pairs = list(core.runtime_state.get("pair_whitelist", settings.pair_whitelist))
    try:
        if settings.dry_run and settings.exchange.api_url is None:
            try:
                sim, mirror = host.call(_start_simulator(settings, sim_overrides, pairs), timeout=120)
            except ExchangeError as exc:
                raise StartupError(f"the market to mirror is unreachable: {exc}") from exc
            log.info("dry-run: trading against the embedded simulator at %s (%s market)", sim.rest_url,
                     settings.simulator.market)
        options = _client_options(settings, sim)
        hooks: dict[str, Callable[..., None]] = {}
        engine_hooks: list[Callable[[LiveEngine], None]] = []
        # The embedded simulator stamps events with its replay clock, not wall time: no websocket lag against it.
        factory = _client_factory(settings, options, hooks, metrics, wall_clock_events=sim is None)
        leverage = int(core.runtime_state.get("leverage", settings.leverage))

        async def connect() -> ExchangeClient:
            # A restart soon after another one can find this minute's request weight spent: wait it out (the
            # positions' stops are on the exchange meanwhile) rather than give up and leave nothing running.
            for attempt in range(1, STARTUP_RATE_LIMIT_TRIES + 1):
                client = factory()
                try:
                    report = await client.initialize(pairs, leverage)
                except RateLimited as exc:
                    await client.close()
                    if attempt == STARTUP_RATE_LIMIT_TRIES:
                        raise
                    log.warning("start-up rate limited (%s); trying again in %.0f s", exc, exc.wait_s + 1)
                    await asyncio.sleep(min(exc.wait_s + 1, 61))
                    continue
                except BaseException:
                    await client.close()
                    raise
                for change in report.changed:
                    log.warning("exchange account adjusted: %s", change)
                return client
            raise AssertionError("unreachable")

        try:
            client = host.call(connect(), timeout=120 + 62 * STARTUP_RATE_LIMIT_TRIES)
        except ExchangeError as exc:
            raise StartupError(f"exchange start-up checks failed: {exc}") from exc
        base = EngineConfig(pairs=pairs, strategy=settings.strategy, timeframe=settings.timeframes[0],
                            leverage=leverage, dry_run=settings.dry_run, strategy_params=strategy_risk_params(settings),
                            desk=DeskOptions(market=market_settings(settings)))
        holder: dict[str, TradingService] = {}
        control = LiveEngineControl(
            make_engine=lambda cfg: _hooked(LiveEngine(cfg, factory, bus=bus, sessions=core.sessions), engine_hooks),
            base_config=base,
            sessions=core.sessions,
            current=lambda: (holder["service"].pairs, holder["service"].leverage),
            strategy_params=lambda: holder["service"].strategy_params(),
            strategy=lambda: holder["service"].strategy,
            prepare=lambda cfg: live_engine_config(settings, cfg),
        )
        service = TradingService(settings, core, client, bus, engine=control,
                                 health=HealthMonitor(core.engine, settings.user_data_dir))
        holder["service"] = service
        bus.subscribe_on_loop(host.loop, service.on_event)  # ledger checked after every engine resync
        audit_risk_rules(bus, core.audit, host.loop)  # every risk rule decision is kept in the audit
        audit_market_actions(bus, core.audit, host.loop)  # and every liquidity and maintenance decision
        if service.paused:
            control.pause_entries()
        guard = LatencyGuard(service, bus, host.loop, settings.risk.latency.emergency_action)
        hooks["latency"] = guard.on_tier_change
        monitor = AccountMonitor(service, bus, warn_distance=Decimal(str(settings.risk.liquidation_warning)))
        research = ResearchService(settings, core, current=lambda: (service.pairs, service.leverage))
        runtime = Runtime(settings, core, bus, host, service, ServiceProxy(service, host.loop), control, sim,
                          guard=guard, monitor=monitor, mirror=mirror, research=research,
                          research_proxy=ResearchProxy(research, host.loop), engine_hooks=engine_hooks)
        runtime.monitor_task = asyncio.run_coroutine_threadsafe(monitor.run(asyncio.Event()), host.loop)
        return runtime
    except BaseException:
        if sim is not None:
            with contextlib.suppress(Exception):
                host.call(mirror.stop() if mirror is not None else sim.stop(), timeout=30)
                if mirror is not None:
                    host.call(mirror.upstream.close(), timeout=30)
        host.stop()
        core.close()
        raise


async def _start_bot(runtime: Runtime) -> Any:
    from bot.telegram.app import build_application  # the bot's stack loads only when the bot runs

    app = build_application(runtime.settings, runtime.proxy, runtime.core, runtime.bus,
                            research=runtime.research_proxy)
    await app.initialize()
    await app.start()
    await app.updater.start_polling()
    return app


async def _stop_bot(app: Any) -> None:
    with contextlib.suppress(Exception):
        if app.updater.running:
            await app.updater.stop()
    with contextlib.suppress(Exception):
        if app.running:
            await app.stop()
    with contextlib.suppress(Exception):
        await app.shutdown()


def close_runtime(runtime: Runtime) -> None:
    """Engine (positions kept), exchange client, simulator (state saved), host, storage, in that order."""
    host = runtime.host
    if runtime.monitor_task is not None:
        runtime.monitor_task.cancel()
    if runtime.protect_task is not None:
        runtime.protect_task.cancel()
    if runtime.guard is not None:
        with contextlib.suppress(Exception):
            host.call(runtime.guard.stop(), timeout=10)
    try:
        if runtime.research is not None:  # workers end with us, their runs cancelled
            host.call(runtime.research.close_backtests(), timeout=60)
    except Exception as exc:
        log.error("backtest jobs: %s", exc)
    try:
        host.call(runtime.control.stop(), timeout=120)
    except Exception as exc:
        log.error("engine stop: %s", exc)

    async def close_exchange() -> None:
        await runtime.service.client.close()
        if runtime.mirror is not None:
            await runtime.mirror.stop()
            await runtime.mirror.upstream.close()
        elif runtime.sim is not None:
            await runtime.sim.stop()

    try:
        host.call(close_exchange(), timeout=60)
    except Exception as exc:
        log.error("exchange shutdown: %s", exc)
    host.stop()
    runtime.core.close()


async def _on_host(runtime: Runtime, coro: Any) -> Any:
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, runtime.host.loop))


async def _resume_flatten(runtime: Runtime) -> Any:
    """Before the engine trades: a flatten that a crash cut short is completed (cancels and reduce-only closes are
    safe to repeat); its report is announced once the bot is up."""
    try:
        report = await _on_host(runtime, runtime.service.resume_interrupted_flatten(ENGINE))
    except Exception as exc:  # the engine and bot must still come up to report and act
        log.error("resuming an interrupted flatten failed: %s", exc)
        runtime.bus.publish(EngineError(message=f"an interrupted flatten could not be completed: {exc}", where="main"))
        return None
    if report is not None:
        log.warning("interrupted flatten completed: flat=%s, %d position(s) closed, errors: %s",
                    report.flat, len(report.closed), "; ".join(report.errors) or "none")
    return report


async def _protect_until_done(runtime: Runtime, attempts: int = 60, delay_s: float = 5.0) -> None:
    for attempt in range(1, attempts + 1):
        try:
            repairs = await runtime.service.protect_positions()
        except Exception as exc:  # rate limited, exchange down: try again shortly
            log.warning("stops for open positions (no engine running), attempt %d: %s", attempt, exc)
            if attempt == 1:
                runtime.bus.publish(EngineError(message=f"open positions could not be checked for stops yet: {exc}; "
                                                        "retrying", where="main"))
            await asyncio.sleep(delay_s)
            continue
        for r in repairs:
            log.warning("no engine running: %s stop %s at %s %s", r.pair, r.action, r.price, r.detail)
        return
    runtime.bus.publish(EngineError(message="open positions could not be checked for stops after "
                                            f"{attempts} attempts", where="main"))


async def _announce_recovery(runtime: Runtime, resumed: Any) -> None:
    """Once the bot listens: what recovery did, and the ledger checked against the exchange (a mismatch is an
    alert to the user, not a log line)."""
    if resumed is not None:
        closed = ", ".join(f"{c.pair} {c.amount}" for c in resumed.closed) or "nothing left to close"
        runtime.bus.publish(RiskAction(action="flatten_resumed", reason=(
            f"a flatten started {resumed.resumed_from.get('started')} by {resumed.resumed_from.get('by')} was "
            f"interrupted by a restart and has been completed: {closed}; "
            f"{'the account is flat' if resumed.flat else 'positions are still open'}")))
    try:
        await _on_host(runtime, runtime.service.check_ledger())
    except Exception as exc:
        log.error("ledger check at start: %s", exc)
        runtime.bus.publish(EngineError(message=f"ledger check at start failed: {exc}", where="main"))


def _hooked(engine: LiveEngine, hooks: list[Callable[[LiveEngine], None]]) -> LiveEngine:
    for hook in hooks:
        hook(engine)
    return engine


def install_ml(settings: Settings, engine_hooks: list[Callable[[LiveEngine], None]] | None = None) -> Any:
    """Make the active ML models the strategies' provider (fusion's ``ml`` vote and grade 3); None, with nothing
    changed, when no usable model is active. Features come from each engine's own closed bars (plus older stored
    candles): ``trader.ml.live.LivePredictions``, attached to every engine the control makes."""
    try:
        from trader.ml.context import MarketContext
        from trader.ml.live import install_live

        live = install_live(settings.models_dir, settings.data_dir,
                            context=MarketContext(record_dir=settings.data_dir if _records_book(settings) else None))
    except Exception as exc:  # a broken model must not keep the engine from trading without it
        log.error("ML models not used: %s", exc)
        return None
    if live is not None and engine_hooks is not None:
        engine_hooks.append(live.attach)
    return live


def _records_book(settings: Settings) -> bool:
    """A real market's book (live, or dry-run mirroring Binance) is recorded; the replay simulator's is not."""
    return not settings.dry_run or settings.simulator.market == "binance"


def _start_market_context(runtime: Runtime, live: Any) -> concurrent.futures.Future[None] | None:
    """Poll funding, the long/short ratio and the order book (trader.ml.context) on the host loop with the
    service's client, for a model's features when one is active, and to record a real market's book either way;
    cancelled at shutdown. None when there is neither."""
    context = getattr(live, "context", None)
    if context is None and _records_book(runtime.settings):
        from trader.ml.context import MarketContext

        context = MarketContext(record_dir=runtime.settings.data_dir)
    if context is None:
        return None

    async def run() -> None:
        await context.run(runtime.service.client, lambda: list(runtime.service.pairs), asyncio.Event())

    return asyncio.run_coroutine_threadsafe(run(), runtime.host.loop)


def ml_scheduler(settings: Settings, pairs: list[str]) -> Any:
    """The scheduled retraining (``ml.retrain`` in the config, off by default); None when it is off."""
    if not settings.ml.retrain:
        return None
    from trader.ml.online import RetrainPolicy, RetrainScheduler

    policy = RetrainPolicy(light_every_s=settings.ml.light_every_s, full_every_s=settings.ml.full_every_s)
    return RetrainScheduler(settings.models_dir, settings.data_dir, tuple(pairs), policy)


async def _run_retraining(scheduler: Any, every_s: float, stop: asyncio.Event) -> None:
    """Ask the scheduler every ``every_s`` whether a retrain is due (it starts a worker process and returns at
    once); log each finished job's outcome."""
    while not stop.is_set():
        try:
            started = await asyncio.to_thread(scheduler.tick)
            if started:
                log.info("ML retrain started (%s)", started)
            result = scheduler.last_result
            if result is not None:
                scheduler.last_result = None
                log.info("ML retrain %s finished: %s", result.get("mode"), result.get("kind"))
        except Exception:
            log.exception("ML retrain scheduling failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


async def run_main_job(
    settings: Settings,
    stop: asyncio.Event,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    sample_s: float = SAMPLE_S,
    on_ready: Callable[[Runtime, dict[str, object]], None] | None = None,
    sim_overrides: dict[str, Any] | None = None,
    config_path: Path | None = None,
    console_logging: bool = True,
) -> int:
    metrics = make_metrics(settings.dry_run)
    try:  # the run lock and the ledger's integrity check (recovery from a backup), before the database opens
        prepared = await asyncio.to_thread(operations.prepare, settings)
    except operations.StartRefused as exc:
        log.error("%s; nothing is trading", exc)
        return 1
    try:
        runtime = await asyncio.to_thread(build_runtime, settings, sim_overrides=sim_overrides, metrics=metrics,
                                          console_logging=console_logging)
    except StartupError as exc:
        prepared.lock.release()
        log.error("%s; nothing is trading", exc)
        return 1
    except BaseException:
        prepared.lock.release()
        raise
    ops: operations.Operations | None = None
    core = runtime.core
    server = None
    unwatch = watch_bus(runtime.bus, metrics)
    # The sample (a position and a balance read, weight 10) feeds only the Prometheus endpoint: none without it. Its
    # rhythm is its own: tied to a test's 0.1 s heartbeat it spent Binance's whole minute of weight.
    sampler = (asyncio.create_task(run_sampler(metrics, runtime.proxy, service_jobs(runtime.research), stop,
                                               interval_s=sample_s))
               if settings.metrics.enabled else None)
    # Before the engine starts: its strategies read the provider, and each engine feeds it its bars.
    ml_provider = runtime.ml = await asyncio.to_thread(install_ml, settings, runtime.engine_hooks)
    context_task = _start_market_context(runtime, ml_provider)
    retrain = ml_scheduler(settings, list(runtime.service.pairs))
    retrain_task = (asyncio.create_task(_run_retraining(retrain, settings.ml.check_every_s, stop))
                    if retrain is not None else None)
    try:
        health = HealthMonitor(core.engine, settings.user_data_dir)
        info: dict[str, object] = {"db": core.engine.url.render_as_string(hide_password=True)}
        if runtime.sim is not None:
            info["simulator"] = runtime.sim.rest_url
        if settings.metrics.enabled:
            server, port = serve_metrics(metrics, settings.metrics.host, settings.metrics.port)
            info["metrics"] = f"http://{settings.metrics.host}:{port}/metrics"
        core.runtime_state.set("last_start", utcnow().isoformat(), updated_by="bsmart run")
        resumed = await _resume_flatten(runtime)
        if not core.runtime_state.get("stopped", False):
            try:
                await runtime.proxy.start(ENGINE)
            except (ServiceError, Exception) as exc:  # the bot must still come up to report and flatten
                log.error("the engine did not start: %s", exc)
                runtime.bus.publish(EngineError(message=f"engine start failed: {exc}", where="main"))
        if not runtime.control.running:
            # No engine to re-place missing stops at its start: the service does it, retrying until the exchange
            # answers (a restart under rate-limit pressure must not leave a position naked).
            runtime.protect_task = asyncio.run_coroutine_threadsafe(_protect_until_done(runtime), runtime.host.loop)
        if settings.telegram.enabled:
            runtime.app = await _start_bot(runtime)
        await _announce_recovery(runtime, resumed)
        ops = runtime.operations = await operations.start(runtime, prepared, config_path)
        log.info(
            "bsmart started: %s, %s margin, leverage %dx, pairs %s, engine %s, bot %s, database %s, metrics %s",
            "dry-run" if settings.dry_run else "LIVE", settings.margin_mode, runtime.service.leverage,
            ", ".join(runtime.service.pairs), "running" if runtime.control.running else "stopped",
            "on" if runtime.app else "off", info["db"], info.get("metrics", "off"),
        )
        if on_ready:
            on_ready(runtime, info)
        while not stop.is_set():
            snapshot = health.snapshot()
            metrics.observe(snapshot)
            perf.info("health ok=%s db_latency_ms=%.2f disk_free_mb=%d uptime_s=%.0f engine=%s",
                      snapshot.ok, snapshot.db_latency_ms or -1, snapshot.disk_free_bytes // 2**20,
                      snapshot.uptime_s, runtime.control.running)
            if not snapshot.ok:
                log.error("health check failed: db_ok=%s %s", snapshot.db_ok, snapshot.db_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=heartbeat_s)
        log.info("stop requested; shutting down")
        core.runtime_state.set("last_stop", utcnow().isoformat(), updated_by="bsmart run")
        return 0
    finally:
        if ops is not None:  # first: the supervisor must not restart what is being stopped on purpose
            await ops.stop()
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if retrain_task is not None:
            retrain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrain_task
            await asyncio.to_thread(retrain.stop)
        if context_task is not None:
            context_task.cancel()
        if ml_provider is not None:
            from trader.strategy.fusion import set_ml_provider

            set_ml_provider(None)
            await asyncio.to_thread(ml_provider.stop)
        unwatch()
        if runtime.app is not None:
            await _stop_bot(runtime.app)
        if server is not None:
            server.shutdown()
            server.server_close()
        await asyncio.to_thread(close_runtime, runtime)
        prepared.lock.release()
        log.info("bsmart stopped cleanly")


def run_until_signal(settings: Settings, config_path: Path | None = None) -> int:
    """Run the main job in this thread's event loop; SIGINT (Ctrl-C) and SIGTERM (docker stop) end it cleanly."""

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_main_job(settings, stop, config_path=config_path)

    return asyncio.run(_main())
