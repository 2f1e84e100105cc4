"""The embedded live engine: one strategy class, the exchange (or the simulator), its own thread and loop.

Control surface (every method may be called from any thread; the ``*_async`` variants from any event loop,
which they never block)::

    engine = LiveEngine(EngineConfig(pairs=["BTC/USDT:USDT"], strategy="rsi_bollinger"),
                        client_factory=lambda: client_from_settings(settings), bus=bus, sessions=sessions)
    engine.start()            / await engine.start_async()     # connect, check, warm up, run
    engine.stop()             / await engine.stop_async()      # positions and their exchange stops are kept
    engine.pause(reason)      / engine.resume()                # refuse / accept new entries (exits still run)
    engine.force_exit(pair)   -> Future[bool]                  # reduce-only market close through the strategy's broker
    engine.force_enter(pair, side, qty=None, stop_price=None) -> Future[bool]
    engine.reconcile_stops()  / await engine.reconcile_stops_async()  -> list[StopRepair]
    engine.status()           -> EngineStatus (state, positions, open orders, wallet, bars, errors)
    engine.strategy_view()    -> Future[dict | None]           # deep copy of strategy.status(), taken between bars
    engine.state              # "stopped" | "starting" | "running" | "stopping" | "error"
    engine.strategy           # the running FuturesStrategy instance (read-only use from other threads)
    engine.desk, engine.host  # the exchange side: await engine.host.wrap(engine.desk.<coroutine>())
    engine.idle() / engine.wait_idle(timeout)   # drills and tests stepping a simulated clock
    engine.bus                # EventBus: OrderPlaced, OrderFilled, StopMoved, StopHit, RiskAction, EngineError,
                              # EngineStateChanged (subscribe_on_loop for the bot)

Configuration that matters for recovery: ``EngineConfig.desk.run`` namespaces client ids (dry-run vs live on one
account); ``sessions`` (SQLAlchemy) makes trades, orders and fills durable — without it ids come from the clock.
``reconcile_on_start`` places a stop for every open position that lacks one before the first bar is traded;
the lead's recovery may call ``reconcile_stops`` again after reconciling the database.

Threads: one. The host thread runs the asyncio loop (exchange client, streams, order desk) and, in a greenlet the
loop switches into when there is something to decide, ``cerebro.run()`` with live feeds (trader/live/runner.py:
a candle reaches the strategy and its order reaches the wire with no thread hand-over, issue 16). ``start``
returns once history is loaded, missing stops are re-placed and the strategy runs; ``stop`` ends the strategy's
run, waits for in-flight orders (an entry's stop is never abandoned half-placed), closes the streams and the
client and stops the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import backtrader as bt
from sqlalchemy.orm import Session, sessionmaker

from trader.backtest.runner import resolve_strategy
from trader.data.timeframes import timeframe_ms
from trader.events import EngineError, EngineStateChanged, EventBus, RiskRuleHit
from trader.exchange.client import ExchangeClient
from trader.exchange.streams import StreamOptions
from trader.live.broker import LiveBroker
from trader.live.cerebro import LiveCerebro
from trader.live.close_spin import CloseSpinner
from trader.live.desk import OrderDesk
from trader.live.feed import Bar, LiveFeed, live_feed_class
from trader.live.gc_pacer import GcPacer
from trader.live.host import EngineHost
from trader.live.ledger import Ledger
from trader.live.orders import DeskOptions, StopRepair
from trader.live.runner import StrategyRunner
from trader.live.store import LiveStore
from trader.risk.book import Decision
from trader.strategy.base import FuturesStrategy
from trader.strategy.sizing import risk_position_size, size_entry

log = logging.getLogger(__name__)
State = Literal["stopped", "starting", "running", "stopping", "error"]


class EngineStateError(RuntimeError):
    pass


class ForceRefused(RuntimeError):
    """A forced entry that was not sent, and why (in words a user can act on); a risk rule's refusal also names
    the rule and its numbers, so a front end can say it in the user's language."""

    def __init__(self, message: str, *, reason: str = "entry_refused", params: dict[str, Any] | None = None,
                 rule: str = "", values: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # trader/service/errors.py REASONS: the façade passes it on with ``params``
        self.params = dict(params or {})
        self.rule = rule
        self.values = dict(values or {})


@dataclass
class EngineConfig:
    pairs: list[str]
    strategy: str | type[FuturesStrategy] = "rsi_bollinger"
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    timeframe: str = "1m"
    leverage: int = 25
    history_bars: int = 300  # preloaded so indicators are warm at the first live bar
    window: int = 1500  # bars the feed keeps for indicator computation
    initialize_account: bool = True  # one-way, cross, leverage (ExchangeClient.initialize)
    reconcile_on_start: bool = True
    connect_timeout_s: float = 15.0
    account_sync_s: float = 60.0  # balance and positions compared with the exchange this often (0: never)
    desk: DeskOptions = field(default_factory=DeskOptions)
    stream: StreamOptions | None = None
    dry_run: bool = True
    # The garbage collector runs after each minute's work, not inside it (trader/live/gc_pacer.py); False leaves
    # it to Python (the bench's comparison).
    gc_pacing: bool = True
    # The loop polls instead of sleeping around the moment the next candles are due (trader/live/close_spin.py);
    # False lets it sleep between candles (the bench's comparison).
    spin_before_close: bool = True


@dataclass(frozen=True)
class EngineStatus:
    state: State
    paused: str | None
    pairs: list[str]
    bars: dict[str, int]
    last_bar_ms: dict[str, int | None]
    positions: dict[str, tuple[str, str]]
    open_orders: list[tuple[str, str, str]]
    wallet: str
    errors: list[str]
    started_at: float | None


class LiveEngine:
    def __init__(self, config: EngineConfig, client_factory: Callable[[], ExchangeClient], *,
                 bus: EventBus | None = None, sessions: sessionmaker[Session] | None = None,
                 host: EngineHost | None = None) -> None:
        self.config = config
        self.client_factory = client_factory
        self.bus = bus or EventBus()
        self.sessions = sessions
        self.strategy_cls = resolve_strategy(config.strategy)
        self.params = self.strategy_cls.param_values(config.strategy_params)
        self.tf_ms = timeframe_ms(config.timeframe)
        self._own_host = host is None
        self.host = host or EngineHost()
        self._state: State = "stopped"
        self._lock = threading.RLock()
        self.client: ExchangeClient | None = None
        self.desk: OrderDesk | None = None
        self.store: LiveStore | None = None
        self.broker: LiveBroker | None = None
        self.feeds: dict[str, LiveFeed] = {}
        self.cerebro: bt.Cerebro | None = None
        self.runner: StrategyRunner | None = None  # Backtrader's live loop on the host thread (runner.py)
        self._strategy: FuturesStrategy | None = None
        self._catch_up_task: asyncio.Task[list[str]] | None = None
        self._paused: str | None = None
        self._risk_scale = 1.0
        self._started_at: float | None = None
        self.errors: list[str] = []
        self.forced: dict[str, bt.Order] = {}  # the last forced entry per pair (read by the service to follow it)
        self.forced_exits: dict[str, bt.Order] = {}
        # The market-side entry rules (trader.risk.gate.MarketGate: liquidity tiers, maintenance windows), asked by
        # the strategy's RiskBook at every entry; set before start (it is handed to the broker at start).
        self.market_gate: Any = None
        self._gate_from_desk = False  # the gate is the desk's market watch (replaced at every start)
        # Called with (pair, bars, live) on the host loop thread: the preloaded history once per start (live False),
        # then every closed feed bar (live True). Must be cheap (the ML predictions only queue work here).
        self.bar_observers: list[Callable[[str, list[Bar], bool], None]] = []

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def strategy(self) -> FuturesStrategy | None:
        return self._strategy

    def _set_state(self, state: State, actor: str = "") -> None:
        self._state = state
        self.bus.publish(EngineStateChanged(state=state, actor=actor))

    # -- start / stop -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0, actor: str = "") -> None:
        with self._lock:
            if self._state in ("running", "starting"):
                return
            if self._state == "stopping":
                raise EngineStateError("the engine is stopping")
            self._state = "starting"
            try:
                self.host.start()
                self.host.call(self._boot(), timeout)
                self._start_backtrader()
            except BaseException as exc:
                self._state = "error"
                self._note_error(f"start failed: {exc!r}", "start")
                self._teardown(timeout=30.0)
                self._state = "stopped"
                raise
            self._started_at = time.time()
            self._set_state("running", actor)

    async def start_async(self, timeout: float = 120.0, actor: str = "") -> None:
        await _off_loop(lambda: self.start(timeout, actor))

    def stop(self, timeout: float = 60.0, actor: str = "") -> None:
        with self._lock:
            if self._state in ("stopped",):
                return
            self._state = "stopping"
            self._teardown(timeout)
            self._set_state("stopped", actor)

    async def stop_async(self, timeout: float = 60.0, actor: str = "") -> None:
        await _off_loop(lambda: self.stop(timeout, actor))

    async def _boot(self) -> None:
        cfg = self.config
        self.client = client = self.client_factory()
        if cfg.initialize_account:
            await client.initialize(list(cfg.pairs), cfg.leverage)
        else:
            await client.ccxt.load_markets()
        if not client.bracket_rows:
            await client.load_rules()  # exchangeInfo filters + leverageBracket: the rules the desk hands out
        ledger = Ledger(self.sessions, strategy=self.strategy_cls.__name__, dry_run=cfg.dry_run, journal=True)
        self.desk = desk = OrderDesk(client, cfg.pairs, leverage=cfg.leverage, ledger=ledger, bus=self.bus,
                                     options=cfg.desk)
        # The desk's, the feeds' and the broker's wake-up: it resumes the strategy on this loop.
        self.runner = desk.wake = StrategyRunner(asyncio.get_running_loop())
        desk.entry_block = self._paused
        desk.risk_scale = self._risk_scale
        await desk.load()
        # The market side (order books, liquidity tiers, maintenance windows, execution optimiser) when configured;
        # its watch is the gate the risk rules ask unless one was set before start.
        await desk.start_market()
        if desk.market is not None and (self.market_gate is None or self._gate_from_desk):
            self.market_gate, self._gate_from_desk = desk.market, True
        if cfg.reconcile_on_start:
            for r in await desk.reconcile_stops():
                log.warning("start-up: %s stop %s at %s %s", r.pair, r.action, r.price, r.detail)
        if desk.catch_up_failed:
            # The fills a rate-limited start could not read: read once the weight is back, beside the running
            # engine (the start must not wait up to a minute for them; the stops are already in place).
            self._catch_up_task = asyncio.get_running_loop().create_task(desk.retry_catch_up())
        self.store = store = LiveStore(client, desk, stream_options=cfg.stream, account_sync_s=cfg.account_sync_s,
                                       in_pair_order=bool(getattr(self.strategy_cls, "decides_in_pair_order",
                                                                  False)))
        # The feeds share one lock with the store, so the bars it releases together appear to Backtrader at once.
        cls = live_feed_class(self.strategy_cls.indicator_lines)
        self.feeds = {}
        for pair in cfg.pairs:
            feed = cls(pair=pair, strategy_cls=self.strategy_cls, strategy_params=self.params, tf_ms=self.tf_ms,
                       window=cfg.window, wake=desk.wake, lock=store.feed_lock, name=pair,
                       timeframe=bt.TimeFrame.Minutes, compression=self.tf_ms // 60_000)
            history = await store.history(pair, self.tf_ms, cfg.history_bars)
            feed.preload_history(history)
            self.feeds[pair] = feed
            self._observe(pair, history, False)
        if self.bar_observers:
            store.on_bar = lambda pair, bar: self._observe(pair, [bar], True)
        if cfg.gc_pacing:
            # It takes collection over once the strategy has consumed the history (Backtrader running, idle).
            store.pacer = GcPacer(lambda: self.broker is not None and self.idle())
        if cfg.spin_before_close:
            store.spinner = CloseSpinner(asyncio.get_running_loop())
        store.start(self.feeds)
        if not await store.wait_connected(cfg.connect_timeout_s):
            # Not fatal: the streams keep trying and resync over REST; the first bars may come late.
            log.warning("candle streams not connected after %.0fs", cfg.connect_timeout_s)

    def _observe(self, pair: str, bars: list[Bar], live: bool) -> None:
        for observer in self.bar_observers:
            try:
                observer(pair, bars, live)
            except Exception:  # an observer must never stop the candles
                log.exception("bar observer failed")

    def _start_backtrader(self) -> None:
        assert self.desk is not None and self.runner is not None
        runner = self.runner
        cerebro = LiveCerebro(stdstats=False, quicknotify=True, live=True, exactbars=False)
        self.broker = LiveBroker(self.desk, self.host, runner)
        # The strategy's RiskBook reads these from its broker (trader.strategy.sizing.strategy_book).
        self.broker.risk_sink = self._risk_hit  # type: ignore[attr-defined]
        self.broker.market_gate = self.market_gate  # type: ignore[attr-defined]
        # A restart keeps the loss streak, the wallet's peak and the trade rate (the ledger's recent trades), dated
        # on the exchange's clock the feeds' history ends at.
        now_ms = max((f.last_minute_ms or 0 for f in self.feeds.values()), default=0) or int(time.time() * 1000)
        try:
            self.broker.risk_history = self.desk.ledger.risk_history(now_ms)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a ledger read failing must not stop the engine; the rules start fresh
            log.exception("risk history could not be read from the ledger; the risk rules start without it")
        cerebro.setbroker(self.broker)
        for pair, feed in self.feeds.items():
            cerebro.adddata(feed, name=pair)
        cerebro.addstrategy(self.strategy_cls, **dict(self.config.strategy_params))
        self.cerebro = cerebro

        def run() -> None:
            try:
                strats = cerebro.run()
                self._strategy = strats[0] if strats else self._strategy
            except BaseException as exc:  # a strategy bug must not take the exchange side (stops) down with it
                log.exception("strategy failed")
                self._note_error(f"strategy failed: {exc!r}", "strategy")
                self._state = "error"

        runner.launch(run)
        # The strategy object exists once Cerebro has built it; wait for it so status() can read it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not runner.done.is_set():
            if getattr(cerebro, "runningstrats", None):
                self._strategy = cerebro.runningstrats[0]
                break
            time.sleep(0.001)

    def _teardown(self, timeout: float) -> None:
        cerebro, runner = self.cerebro, self.runner
        if cerebro is not None:
            cerebro.runstop()
            for feed in self.feeds.values():
                feed.end()
        if runner is not None and cerebro is not None and self.host.running:
            if self.host.in_host_thread():
                self._note_error("the engine was stopped from its own loop; the strategy ends with the loop", "stop")
            elif not runner.done.wait(timeout):
                self._note_error("the strategy did not stop in time", "stop")
        self.cerebro = None
        task, self._catch_up_task = self._catch_up_task, None
        if task is not None and not task.done() and self.host.running:
            self.host.loop.call_soon_threadsafe(task.cancel)
        if self.host.running:
            try:
                self.host.call(self._shutdown(), timeout)
            except Exception as exc:  # keep going: the threads must still end
                self._note_error(f"shutdown: {exc!r}", "stop")
            if self._own_host:
                self.host.stop(timeout)

    async def _shutdown(self) -> None:
        if self.store is not None:
            await self.store.stop()
        if self.desk is not None:
            await self.desk.drain()  # an entry's stop is never left half-placed
            if self.desk._balance_task is not None:
                await asyncio.gather(self.desk._balance_task, return_exceptions=True)
            await self.desk.close()
            self.desk.ledger.close()
        if self.client is not None:
            await self.client.close()
        self.store = None
        self.client = None

    # -- entries ------------------------------------------------------------------------------------------------
    def pause(self, reason: str = "paused", actor: str = "") -> None:
        """New entries are refused (by the broker at once, and by the desk for any already queued)."""
        self._paused = reason
        if self.desk is not None:
            self.desk.entry_block = reason
        self.bus.publish(EngineStateChanged(state="paused", actor=actor))

    def resume(self, actor: str = "") -> None:
        self._paused = None
        if self.desk is not None:
            self.desk.entry_block = None
        self.bus.publish(EngineStateChanged(state="resumed", actor=actor))

    @property
    def paused(self) -> str | None:
        return self._paused

    def set_risk_scale(self, scale: float) -> None:
        """Size new entries by this share of their usual risk (the latency guard's safe mode)."""
        self._risk_scale = scale
        if self.desk is not None:
            self.desk.risk_scale = scale

    def _in_strategy(self, fn: Callable[[FuturesStrategy], bool]) -> concurrent.futures.Future[bool]:
        """Run ``fn(strategy)`` where Backtrader runs, between its passes (orders may only be created there)."""
        if self._state != "running" or self.broker is None or self._strategy is None:
            raise EngineStateError("the engine is not running")
        fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
        strategy = self._strategy

        def run() -> None:
            try:
                fut.set_result(fn(strategy))
            except BaseException as exc:
                fut.set_exception(exc)

        self.broker.commands.put(run)
        self.broker.wake.set()
        return fut

    def strategy_view(self) -> concurrent.futures.Future[dict[str, Any] | None]:
        """A deep copy of the running strategy's ``status()`` (the master's regime, route, last graded signals and
        fusion weights), taken between Backtrader's passes so the caller holds a snapshot nothing else
        touches; None for a strategy without such a view (the reference strategy)."""
        def run(s: FuturesStrategy) -> Any:
            status = getattr(s, "status", None)
            return copy.deepcopy(status()) if callable(status) else None

        return self._in_strategy(run)  # type: ignore[arg-type]

    def _risk_hit(self, d: Decision) -> None:
        """A risk rule blocked or shrank an entry: an event for the notifier and the audit."""
        self.bus.publish(RiskRuleHit(rule=d.hit.rule, effect=d.hit.effect, pair=d.pair,
                                     side="long" if d.side > 0 else "short", values=dict(d.hit.values)))

    def risk_view(self) -> concurrent.futures.Future[dict[str, Any] | None]:
        """A copy of the running strategy's RiskBook state (each rule's state for /risk), taken on the Backtrader
        thread between bars; None for a strategy without a RiskBook."""
        def run(s: FuturesStrategy) -> Any:
            book = getattr(s, "risk", None)
            return copy.deepcopy(book.status()) if book is not None else None

        return self._in_strategy(run)  # type: ignore[arg-type]

    def force_exit(self, pair: str) -> concurrent.futures.Future[bool]:
        """Reduce-only market close of the strategy's position on ``pair``; True if an order went out."""
        def run(s: FuturesStrategy) -> bool:
            order = s.close_position(self.feeds[pair], tag="force_exit", forced=True)
            if order is not None:
                self.forced_exits[pair] = order
            return order is not None
        return self._in_strategy(run)

    def force_enter(self, pair: str, side: Literal["long", "short"], qty: float | None = None,
                    stop_price: float | None = None) -> concurrent.futures.Future[bool]:
        """Market entry with its stop, decided by a person: it goes out on the latest price whenever the engine
        runs (the strategy's own entries wait for a live bar; this one does not). Without ``stop_price`` the stop
        sits 0.8/leverage from the last close; without ``qty`` the size is the strategy's: ``risk_per_trade`` (2 %)
        of the wallet at that stop through the account's risk rules (trader/risk, the strategy's RiskBook, as for
        its own entries: a rule may shrink it or refuse it, saying which). Resolves True once the order is handed to the desk, or raises
        ``ForceRefused`` saying why it was not; the Backtrader order is kept in ``forced[pair]`` so a caller can
        follow it to its fill or rejection."""
        sign = 1 if side == "long" else -1

        def run(s: FuturesStrategy) -> bool:
            d = self.feeds[pair]
            acct = s.account
            spec = acct.instrument(d)
            ref = d.last_close
            if not ref or not math.isfinite(ref):
                raise ForceRefused(f"no price for {pair} yet: the first candle has not arrived",
                                   reason="no_price_yet", params={"pair": pair})
            if self.desk is not None and self.desk.entry_block:
                block = self.desk.entry_block
                if block == "paused":
                    raise ForceRefused("entries are paused", reason="entries_paused", params={"pair": pair})
                if block == "latency":
                    raise ForceRefused("entries are blocked by the latency tier (exchange round trips too slow)",
                                       reason="latency_blocks_entries", params={"pair": pair})
                raise ForceRefused(f"entries are blocked: {block}", reason="entries_blocked",
                                   params={"pair": pair, "why": str(block)})
            dist = 0.8 / acct.leverage
            stop = stop_price if stop_price is not None else ref * (1 - sign * dist)
            dist = abs(ref - stop) / ref
            size = spec.round_qty_down(qty) if qty is not None else None
            if size is None:
                risk = float(self.params.get("risk_per_trade", 0.02)) * acct.risk_scale()
                wallet = acct.wallet_balance()
                if wallet <= 0:
                    raise ForceRefused("the wallet balance is not known yet (or is zero)", reason="wallet_unknown",
                                       params={"pair": pair})
                book = getattr(s, "risk", None)
                if book is None:  # a strategy that does not size through trader/risk
                    size = risk_position_size(wallet, acct.available_balance(), ref, dist, spec,
                                              acct.leverage, risk).qty
                else:
                    context = getattr(s, "risk_context", None)
                    vol, regime = context(d) if callable(context) else (math.nan, "unknown")
                    sized, decision = size_entry(book, wallet, acct.available_balance(), pair, sign, ref, dist, spec,
                                                 acct.leverage, risk, vol=vol, regime=regime)
                    hit = decision.blocked
                    if hit is not None:
                        detail = ", ".join(f"{k} {v}" for k, v in hit.values.items())
                        raise ForceRefused(f"the {hit.rule} risk rule refuses this entry ({detail})", rule=hit.rule,
                                           values=dict(hit.values))
                    size = sized.qty
                if not size:
                    raise ForceRefused(
                        f"risking {risk:.1%} of the {wallet:.2f} USDT wallet at a stop {dist:.2%} away buys less "
                        f"than {pair}'s minimum order ({spec.min_notional} USDT notional, step {spec.step_size}), "
                        f"or the available margin ({acct.available_balance():.2f} USDT) does not cover it",
                        reason="below_min_order",
                        params={"pair": pair, "risk": f"{risk:.1%}", "wallet": f"{wallet:,.2f}",
                                "distance": f"{dist:.2%}", "min_notional": str(spec.min_notional),
                                "step": str(spec.step_size), "available": f"{acct.available_balance():,.2f}"})
            enter = s.buy if sign > 0 else s.sell
            leave = s.sell if sign > 0 else s.buy
            entry = enter(data=d, size=size, transmit=False, tag="force_enter", forced=True)
            leave(data=d, size=size, exectype=bt.Order.Stop, price=spec.round_price(stop), parent=entry,
                  transmit=True, close_position=True, tag="stop", forced=True)
            self.forced[pair] = entry
            if entry.status in (bt.Order.Rejected, bt.Order.Margin):
                why = str(entry.info.get("reject_reason") or "the broker refused the order")
                raise ForceRefused(why, reason="entry_rejected", params={"pair": pair, "why": why})
            return True
        return self._in_strategy(run)

    # -- stops ----------------------------------------------------------------------------------------------------
    def reconcile_stops(self, timeout: float = 60.0) -> list[StopRepair]:
        if self.desk is None or not self.host.running:
            raise EngineStateError("the engine is not running")
        return self.host.call(self.desk.reconcile_stops(), timeout)

    async def reconcile_stops_async(self) -> list[StopRepair]:
        if self.desk is None or not self.host.running:
            raise EngineStateError("the engine is not running")
        return await self.host.wrap(self.desk.reconcile_stops())

    async def resync_async(self) -> list[str]:
        """Bring the desk's positions and the ledger in step with the exchange from the account's fills (after a
        flatten, or on demand); returns the pairs whose difference no fill explained."""
        if self.desk is None or not self.host.running:
            raise EngineStateError("the engine is not running")
        desk = self.desk

        async def run() -> list[str]:
            pairs = await desk.resync()
            await desk.drain()
            desk.ledger.flush()
            return pairs
        return await self.host.wrap(run())

    # -- status ---------------------------------------------------------------------------------------------------
    def status(self) -> EngineStatus:
        desk = self.desk
        snap: dict[str, Any] = {}
        if desk is not None:
            if self.host.running and not self.host.in_host_thread():
                # The desk's tables belong to the engine loop: read them there.
                try:
                    snap = self.host.call(_snapshot(desk), 5.0)
                except Exception:  # the loop is going away: a partial status is better than none
                    snap = {}
            else:
                snap = desk.snapshot()
        return EngineStatus(
            state=self._state, paused=self._paused, pairs=list(self.config.pairs),
            bars={p: f.delivered for p, f in self.feeds.items()},
            last_bar_ms={p: f.last_bar_ms for p, f in self.feeds.items()},
            positions=snap.get("positions", {}), open_orders=snap.get("open_orders", []),
            wallet=snap.get("wallet", "0"), errors=list(self.errors) + (list(desk.errors) if desk else []),
            started_at=self._started_at,
        )

    def idle(self) -> bool:
        """Every pushed bar has been through the strategy and every resulting order is settled on the exchange
        side (tests and drills step a simulated clock on this)."""
        broker, desk = self.broker, self.desk
        if broker is None or desk is None:
            return True
        if any(f.haslivedata() for f in self.feeds.values()) or broker.pending_submits or desk.busy():
            return False
        if not desk.notes.empty() or not broker.commands.empty():
            return False
        return True

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until ``idle()`` holds across two Backtrader passes (so the last bar's next() has returned)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle() and self.broker is not None:
                mark = self.broker.passes
                self.broker.wake.set()
                while self.broker.passes < mark + 2 and time.monotonic() < deadline:
                    self.broker.wake.set()
                    time.sleep(0.0005)
                if self.idle():
                    return
            time.sleep(0.0005)
        raise TimeoutError("the engine did not become idle")

    def _note_error(self, message: str, where: str) -> None:
        log.error("%s: %s", where, message)
        self.errors.append(message)
        self.bus.publish(EngineError(message=message, where=f"live.{where}"))


async def _snapshot(desk: OrderDesk) -> dict[str, Any]:
    return desk.snapshot()


async def _off_loop(fn: Callable[[], None]) -> None:
    """Run a blocking call on a short-lived thread; the calling loop keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, fut, exc)
        else:
            loop.call_soon_threadsafe(_settle, fut, None)

    thread = threading.Thread(target=run, name="live-engine-control", daemon=True)
    thread.start()
    try:
        await fut
    finally:
        while thread.is_alive():  # it is past its last statement; never block the loop on it
            await asyncio.sleep(0.001)


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
