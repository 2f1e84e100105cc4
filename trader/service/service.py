"""TradingService: the one façade every front end calls (the bot, the CLI, tests).

It runs on the event loop that owns the exchange client (the engine host's); front ends on other loops reach it
through ``ServiceProxy``. Every mutating call is audited with who asked, what, and how it ended, and whatever it
changes (leverage, whitelist, paused/stopped) is written to RuntimeState, which wins over the config file, so a
restart keeps what was changed from the phone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from trader.bootstrap import Core
from trader.config.pairs import normalize_pair
from trader.config.schema import Settings
from trader.events import EngineStateChanged, EventBus, RiskAction
from trader.exchange.client import ExchangeClient, not_sent
from trader.exchange.errors import ExchangeError
from trader.jobs import hyperopt as hyperopt_job
from trader.live.orders import StopRepair
from trader.monitoring.health import HealthMonitor
from trader.persistence.audit import Actor
from trader.service import pnl as pnl_mod
from trader.service.auditing import audited
from trader.service.errors import ServiceError
from trader.service.flatten import flatten_account
from trader.service.funding import sync_funding
from trader.service.ledger_sync import protect_positions, sync_ledger
from trader.service.leverage import OpenPosition, Problem, leverage_refusals
from trader.service.reconcile import ReconcileReport, check_ledger
from trader.service.views import (
    BalanceView,
    ExecutionView,
    FlattenReport,
    LeverageChange,
    PositionView,
    WhitelistView,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class EngineControl(Protocol):
    """What the service needs from the live engine."""

    @property
    def running(self) -> bool: ...

    @property
    def paused(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def pause_entries(self, reason: str = "paused") -> None: ...

    def resume_entries(self) -> None: ...

    async def force_enter(self, pair: str, side: str) -> int: ...

    async def force_exit(self, target: int | str) -> list[int]: ...


@dataclass(frozen=True)
class StatusView:
    running: bool
    paused: bool
    dry_run: bool
    leverage: int
    pairs: tuple[str, ...]
    open_positions: int
    latency_tier: str
    latency_p99_ms: float | None
    ml: Any = None  # trader.ml.live.MLState: the active models (None: not read)
    now_ms: int | None = None  # when ``ml`` was read (for the models' age)
    ml_latest: Any = None  # (bar close ms, seconds since it was made) of the engine's newest prediction, or None


@dataclass(frozen=True)
class HealthView:
    ok: bool
    db_ok: bool
    db_latency_ms: float | None
    disk_free_bytes: int
    uptime_s: float
    engine_running: bool
    latency_tier: str
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    api_errors: int
    problems: tuple[str, ...]


RECHECK_WAIT_S = 61.0  # a ledger check refused by rate limiting waits this long at most, once


def _problems_error(code: str, problems: list[Problem]) -> ServiceError:
    """One refusal for one problem or several (each said in the user's language by its own reason)."""
    message = "; ".join(p.text for p in problems)
    if len(problems) == 1:
        return ServiceError(code, message, reason=problems[0].reason, params=problems[0].params)
    return ServiceError(code, message, reason="several", params={"items": [(p.reason, p.params) for p in problems]})


def _who(actor: Actor) -> str:
    return f"{actor.source}:{actor.user_id}" if actor.user_id is not None else actor.source


class TradingService:
    def __init__(
        self,
        settings: Settings,
        core: Core,
        client: ExchangeClient,
        bus: EventBus,
        engine: EngineControl | None = None,
        health: HealthMonitor | None = None,
    ):
        self.settings = settings
        self.core = core
        self.client = client
        self.bus = bus
        self.engine = engine
        self.health_monitor = health or HealthMonitor(core.engine, settings.user_data_dir)
        self._flatten_task: asyncio.Task[FlattenReport] | None = None
        self._flatten_runs = 0
        self._lock = asyncio.Lock()  # one mutating action at a time: two phones, one account
        self.last_reconcile: ReconcileReport | None = None

    # -- effective state (RuntimeState over config) -----------------------------------------------------------------
    @property
    def leverage(self) -> int:
        return int(self.core.runtime_state.get("leverage", self.settings.leverage))

    @property
    def pairs(self) -> list[str]:
        return list(self.core.runtime_state.get("pair_whitelist", self.settings.pair_whitelist))

    @property
    def paused(self) -> bool:
        return bool(self.core.runtime_state.get("paused", False))

    @property
    def strategy(self) -> str:
        """The strategy in force: chosen with /strategy (RuntimeState) over the config's; a stored name no longer
        registered falls back to the config's."""
        from trader.strategy.reference import STRATEGIES

        name = self.core.runtime_state.get("strategy")
        return name if isinstance(name, str) and name in STRATEGIES else self.settings.strategy

    # -- plumbing ---------------------------------------------------------------------------------------------------
    async def _audited(self, actor: Actor, action: str, arguments: dict[str, Any], fn: Callable[[], Awaitable[T]]) -> T:
        return await audited(self.core, actor, action, arguments, fn)

    def _remember(self, key: str, value: Any, actor: Actor) -> None:
        self.core.runtime_state.set(key, value, updated_by=_who(actor))

    async def _reload_engine(self) -> None:
        """A running engine trades the whitelist and leverage it started with: restart it so a change applies.
        Positions and their exchange-side stops stay in place across the restart."""
        if self.engine is not None and self.engine.running:
            await self.engine.stop()
            await self.engine.start()

    def _engine(self) -> EngineControl:
        if self.engine is None:
            raise ServiceError("not_running", "no trading engine is configured in this process", reason="engine_not_configured")
        return self.engine

    def _running_engine(self) -> EngineControl:
        engine = self._engine()
        if not engine.running:
            raise ServiceError("not_running", "trading is not running", reason="engine_stopped")
        return engine

    # -- the settings in force, for front ends on other loops (ServiceProxy exposes only coroutines) ------------------
    async def leverage_now(self) -> int:
        return self.leverage

    async def applied_strategy_params(self) -> dict[str, Any]:
        return self.strategy_params()

    async def strategy_now(self) -> StrategyView:
        """The strategy in force, the config's, and every registered choice."""
        from trader.strategy.reference import STRATEGIES

        return StrategyView(self.strategy, self.settings.strategy, tuple(sorted(STRATEGIES)),
                            self.engine is not None and self.engine.running)

    # -- engine control ---------------------------------------------------------------------------------------------
    def _startable(self) -> EngineControl:
        engine = self._engine()
        if engine.running:
            raise ServiceError("conflict", "trading is already running", reason="already_running")
        return engine

    def _stoppable(self) -> EngineControl:
        engine = self._engine()
        if not engine.running:
            raise ServiceError("conflict", "trading is not running", reason="engine_stopped")
        return engine

    async def check_start(self) -> None:
        """Raise what ``start`` would be refused with (a front end asks before its confirmation); a read."""
        self._startable()

    async def check_stop(self) -> None:
        """Raise what ``stop`` would be refused with; a read."""
        self._stoppable()

    async def start(self, actor: Actor) -> StatusView:
        async def run() -> StatusView:
            engine = self._startable()
            await engine.start()
            if self.paused:
                engine.pause_entries()
            self._remember("stopped", False, actor)
            self.bus.publish(EngineStateChanged(state="started", actor=_who(actor)))
            return await self.status()

        return await self._audited(actor, "start", {}, run)

    async def stop(self, actor: Actor) -> StatusView:
        """Stop the engine. Positions and their exchange-side stops stay in place."""

        async def run() -> StatusView:
            engine = self._stoppable()
            await engine.stop()
            self._remember("stopped", True, actor)
            self.bus.publish(EngineStateChanged(state="stopped", actor=_who(actor)))
            return await self.status()

        return await self._audited(actor, "stop", {}, run)

    async def pause(self, actor: Actor) -> StatusView:
        async def run() -> StatusView:
            if self.paused:
                raise ServiceError("conflict", "entries are already paused", reason="already_paused")
            if self.engine is not None:
                self.engine.pause_entries()
            self._remember("paused", True, actor)
            self.bus.publish(EngineStateChanged(state="paused", actor=_who(actor)))
            return await self.status()

        return await self._audited(actor, "pause", {}, run)

    async def resume(self, actor: Actor) -> StatusView:
        async def run() -> StatusView:
            if not self.paused:
                raise ServiceError("conflict", "entries are not paused", reason="not_paused")
            if self.engine is not None:
                self.engine.resume_entries()
            self._remember("paused", False, actor)
            self.bus.publish(EngineStateChanged(state="resumed", actor=_who(actor)))
            return await self.status()

        return await self._audited(actor, "resume", {}, run)

    # -- flatten ----------------------------------------------------------------------------------------------------
    FLATTEN_JOURNAL = "flatten_pending"

    async def flatten(self, actor: Actor, *, resumed_from: dict[str, Any] | None = None) -> FlattenReport:
        """Stop entries, cancel everything, close everything; a second call while one runs joins the first.

        A journal entry (RuntimeState ``flatten_pending``) lives from the first step to the ledger's update, so a
        flatten cut short by a crash is resumed and reported at the next start (``resume_interrupted_flatten``).
        The fills are written to the ledger from the exchange's own trade list, then the ledger is checked."""
        if self._flatten_task is not None and not self._flatten_task.done():
            report = await asyncio.shield(self._flatten_task)
            joined = FlattenReport(**{**report.__dict__, "joined": True})
            await asyncio.to_thread(self.core.audit.record, actor, "flatten", {}, "ok", "joined a running flatten")
            return joined
        self._flatten_runs += 1
        run_id = f"f{dt.datetime.now(dt.timezone.utc):%H%M%S}{self._flatten_runs}"

        async def run() -> FlattenReport:
            # Entries stop first, so the strategy cannot open what we are about to close.
            if self.engine is not None:
                self.engine.pause_entries()
            self._remember("paused", True, actor)
            self._remember(self.FLATTEN_JOURNAL, {"run": run_id, "started": dt.datetime.now(dt.timezone.utc)
                                                  .isoformat(), "by": _who(actor)}, actor)
            self.bus.publish(EngineStateChanged(state="flattening", actor=_who(actor)))
            report = await flatten_account(self.client, run_id)
            report.resumed_from = resumed_from
            report.unexplained = await self._settle_ledger()
            recon = await self.check_ledger()
            report.ledger_ok, report.ledger_summary = recon.ok, recon.summary()
            self.core.runtime_state.set(self.FLATTEN_JOURNAL, None, updated_by=_who(actor))
            if not report.flat:
                self.bus.publish(RiskAction(action="flatten_incomplete",
                                            reason="; ".join(report.errors) or "positions left open"))
            return report

        self._flatten_task = asyncio.ensure_future(self._audited(actor, "flatten", {}, run))
        return await asyncio.shield(self._flatten_task)

    async def resume_interrupted_flatten(self, actor: Actor) -> FlattenReport | None:
        """At start: a flatten the journal shows unfinished (the process died during it) is run again — cancels
        and reduce-only closes are safe to repeat — and the user is told it was interrupted."""
        pending = self.core.runtime_state.get(self.FLATTEN_JOURNAL)
        if not pending:
            return None
        log.warning("a flatten started %s by %s did not finish (the process stopped); resuming it",
                    pending.get("started"), pending.get("by"))
        self.bus.publish(RiskAction(action="flatten_resumed",
                                    reason=f"a flatten started {pending.get('started')} by {pending.get('by')} was "
                                           "interrupted; it is being completed now"))
        return await self.flatten(actor, resumed_from=dict(pending))

    async def _settle_ledger(self) -> list[str]:
        """After orders the engine did not send (flatten): the engine's desk — or, with no engine running, a desk
        loaded for it — reads the account's fills and closes the trades the exchange closed."""
        resync = getattr(self.engine, "resync", None)
        try:
            if resync is not None and self.engine is not None and self.engine.running:
                pairs = await resync()
                if pairs is not None:
                    return list(pairs)
            return await sync_ledger(self.client, self.core.sessions, pairs=self.pairs, leverage=self.leverage,
                                     bus=self.bus, dry_run=self.settings.dry_run, run=self._client_id_run())
        except ExchangeError as exc:
            log.error("ledger update after flatten failed: %s", exc)
            return []

    async def protect_positions(self) -> list[StopRepair]:
        """Stops for every exchange position while no engine runs (start-up when the engine could not start or
        was stopped by a user): nothing is left without its stop because the engine is not there."""
        return await protect_positions(self.client, self.core.sessions, pairs=self.pairs, leverage=self.leverage,
                                       bus=self.bus, dry_run=self.settings.dry_run, run=self._client_id_run())

    def _client_id_run(self) -> str:
        base = getattr(getattr(self.engine, "_base", None), "desk", None)
        return getattr(base, "run", "") or ""

    # -- the ledger against the exchange ---------------------------------------------------------------------------
    async def check_ledger(self, *, alert: bool = True) -> ReconcileReport:
        """The ledger invariant (trader.service.reconcile); a mismatch is an alert to the user, not a log line."""
        report: ReconcileReport | None = None
        for attempt in (1, 2):
            try:
                baseline = await self._wallet_baseline()
                # Settlements booked since the account monitor's last poll belong in the ledger before comparing.
                await sync_funding(self.client, self.core.sessions)
                report = await check_ledger(self.client, self.core.sessions, baseline=baseline)
                break
            except ExchangeError as exc:
                wait = getattr(exc, "wait_s", None)
                if attempt == 1 and not_sent(exc) and wait is not None and wait <= RECHECK_WAIT_S:
                    # Rate limited (a restart's burst of reads): the weight comes back within the minute.
                    await asyncio.sleep(wait + 0.5)
                    continue
                now = dt.datetime.now(dt.timezone.utc)
                report = ReconcileReport(checked_at=now, since=now, errors=[f"the exchange could not be read: {exc}"])
        assert report is not None
        self.last_reconcile = report
        if not report.ok:
            log.error("ledger check: %s", report.summary())
            if alert:
                self.bus.publish(RiskAction(action="ledger_mismatch", reason=report.summary()[:1500]))
        return report

    async def on_event(self, event: Any) -> None:
        """Bus subscriber on the service's loop: after the engine resynced from the exchange, the ledger is
        checked (flatten runs its own check)."""
        if getattr(event, "action", None) == "account_resync" and not (
                self._flatten_task is not None and not self._flatten_task.done()):
            await self.check_ledger()

    async def reconcile(self, actor: Actor, *, fix: bool = False) -> ReconcileReport:
        """Check the ledger against the exchange; with ``fix`` first bring it in step from the account's fills."""
        if not fix:
            return await self.check_ledger()

        async def run() -> ReconcileReport:
            async with self._lock:
                pairs = await self._settle_ledger()
                report = await self.check_ledger()
                report.fixed = [f"{p}: exit recorded as unknown (no fill explains it)" for p in pairs]
                return report

        return await self._audited(actor, "reconcile_fix", {}, run)

    async def _wallet_baseline(self) -> dict[str, Any]:
        """The wallet when this ledger started being checked: the wallet identity holds from then on."""
        baseline = self.core.runtime_state.get("wallet_baseline")
        if baseline:
            return dict(baseline)
        balance = await self.client.fetch_balance()
        now = dt.datetime.fromtimestamp(await self.client.fetch_time() / 1000, tz=dt.timezone.utc)
        baseline = {"time": now.isoformat(), "wallet": str(balance.wallet)}
        self.core.runtime_state.set("wallet_baseline", baseline, updated_by="reconcile")
        return baseline

    # -- leverage ---------------------------------------------------------------------------------------------------
    async def _leverage_refusal(self, leverage: int) -> list[Any]:
        """Raise the ServiceError a change to ``leverage`` meets now (bounds, brackets, the open positions' stops);
        the open positions otherwise."""
        positions = await self.client.fetch_positions()
        stops = await self._stop_prices()
        tiers = {p: await self.client.fetch_leverage_brackets(p) for p in sorted(set(self.pairs) | {x.pair for x in positions})}
        invalid, refused = leverage_refusals(
            leverage,
            max_leverage=self.settings.max_leverage,
            stop_leverage_factor=self.settings.risk.stop_leverage_factor,
            positions=[OpenPosition(p.pair, p.side, p.entry_price, p.notional, stops.get(p.pair)) for p in positions],
            tiers=tiers,
        )
        for code, problems in (("invalid_argument", invalid), ("refused", refused)):
            if problems:
                raise _problems_error(code, problems)
        return positions

    async def check_leverage(self, leverage: int) -> None:
        """Raise what ``set_leverage(leverage)`` would be refused with now; a read (front ends ask it before they
        offer a confirmation; the change checks again, the state may move meanwhile)."""
        await self._leverage_refusal(leverage)

    async def set_leverage(self, actor: Actor, leverage: int) -> LeverageChange:
        async def run() -> LeverageChange:
            async with self._lock:
                old = self.leverage
                positions = await self._leverage_refusal(leverage)
                applied = []
                for pair in sorted(set(self.pairs) | {x.pair for x in positions}):
                    await self.client.set_leverage(pair, leverage)
                    applied.append(pair)
                self._remember("leverage", leverage, actor)
                await self._reload_engine()
                return LeverageChange(old, leverage, tuple(applied))

        return await self._audited(actor, "set_leverage", {"leverage": leverage}, run)

    # -- whitelist --------------------------------------------------------------------------------------------------
    def _parse_pairs(self, texts: list[str]) -> list[str]:
        pairs = []
        for text in texts:
            try:
                pairs.append(normalize_pair(text, self.settings.stake_currency))
            except ValueError as exc:
                raise ServiceError("invalid_argument", str(exc), reason="bad_pair", params={"text": text[:40]}) from None
        if not self.client.ccxt.markets:
            raise ServiceError("exchange", "markets are not loaded yet", reason="markets_not_loaded")
        unknown = [p for p in pairs if p not in self.client.ccxt.markets or not self.client.ccxt.markets[p].get("active", True)]
        if unknown:
            raise ServiceError("invalid_argument", f"not traded on the exchange: {', '.join(unknown)}",
                               reason="pair_not_traded", params={"pairs": unknown})
        return list(dict.fromkeys(pairs))

    async def whitelist(self) -> WhitelistView:
        return WhitelistView(tuple(self.pairs))

    def _whitelist_additions(self, texts: list[str]) -> list[str]:
        """The pairs ``texts`` would add, or the ServiceError saying why none can be."""
        pairs = self._parse_pairs(texts)
        new = [p for p in pairs if p not in self.pairs]
        if not new:
            raise ServiceError("conflict", f"already whitelisted: {', '.join(pairs)}", reason="already_whitelisted",
                               params={"pairs": pairs})
        return new

    async def _whitelist_remainder(self, texts: list[str]) -> tuple[list[str], list[str]]:
        """(pairs to remove, the whitelist left), or the ServiceError saying why they cannot go."""
        pairs = self._parse_pairs(texts)
        current = self.pairs
        missing = [p for p in pairs if p not in current]
        if missing:
            raise ServiceError("conflict", f"not whitelisted: {', '.join(missing)}", reason="not_whitelisted",
                               params={"pairs": missing})
        open_pairs = {p.pair for p in await self.client.fetch_positions()}
        busy = [p for p in pairs if p in open_pairs]
        if busy:
            raise ServiceError("refused", f"open positions on {', '.join(busy)}; exit them first",
                               reason="positions_open", params={"pairs": busy})
        remaining = [p for p in current if p not in pairs]
        if not remaining:
            raise ServiceError("refused", "the whitelist cannot be empty", reason="whitelist_empty")
        return pairs, remaining

    async def check_whitelist_add(self, texts: list[str]) -> None:
        """Raise what ``whitelist_add(texts)`` would be refused with now; a read."""
        self._whitelist_additions(texts)

    async def check_whitelist_remove(self, texts: list[str]) -> None:
        """Raise what ``whitelist_remove(texts)`` would be refused with now; a read."""
        await self._whitelist_remainder(texts)

    async def whitelist_add(self, actor: Actor, texts: list[str]) -> WhitelistView:
        async def run() -> WhitelistView:
            async with self._lock:
                new = self._whitelist_additions(texts)
                current = self.pairs
                for pair in new:  # the pair trades at the account's settings from its first entry
                    await self.client.set_leverage(pair, self.leverage)
                self._remember("pair_whitelist", current + new, actor)
                await self._reload_engine()
                return WhitelistView(tuple(current + new), tuple(new))

        return await self._audited(actor, "whitelist_add", {"pairs": texts}, run)

    async def whitelist_remove(self, actor: Actor, texts: list[str]) -> WhitelistView:
        async def run() -> WhitelistView:
            async with self._lock:
                pairs, remaining = await self._whitelist_remainder(texts)
                self._remember("pair_whitelist", remaining, actor)
                await self._reload_engine()
                return WhitelistView(tuple(remaining), tuple(pairs))

        return await self._audited(actor, "whitelist_remove", {"pairs": texts}, run)

    # -- force entry / exit -----------------------------------------------------------------------------------------
    async def _entry_pair(self, pair_text: str, side: str) -> tuple[str, EngineControl]:
        """The pair a forced entry would open and the engine to ask, or the ServiceError saying why it cannot."""
        if side not in ("long", "short"):
            raise ServiceError("invalid_argument", f"side must be long or short, got {side!r}", reason="bad_side",
                               params={"side": str(side)[:20]})
        (pair,) = self._parse_pairs([pair_text])
        if pair not in self.pairs:
            raise ServiceError("refused", f"{pair} is not whitelisted", reason="not_whitelisted",
                               params={"pairs": [pair]})
        engine = self._running_engine()
        if self.paused:  # the engine refuses it too; said before a confirmation is offered
            raise ServiceError("refused", f"no entry on {pair}: entries are paused", reason="entries_paused",
                               params={"pair": pair})
        held = [p for p in await self.client.fetch_positions([pair]) if p.pair == pair]
        if held:
            # A second entry would silently double the position (and its risk) under the first trade's stop.
            raise ServiceError("refused", f"{pair} already has an open {held[0].side} position of "
                                          f"{abs(held[0].contracts)}; exit it first (/forceexit)",
                               reason="position_open",
                               params={"pair": pair, "side": held[0].side, "contracts": abs(held[0].contracts)})
        return pair, engine

    async def check_force_enter(self, pair_text: str, side: str) -> None:
        """Raise what ``force_enter`` would be refused with before it reaches the engine (the engine's own checks,
        risk rules among them, run only on the entry itself); a read."""
        await self._entry_pair(pair_text, side)

    async def force_enter(self, actor: Actor, pair_text: str, side: str) -> int:
        async def run() -> int:
            pair, engine = await self._entry_pair(pair_text, side)
            return await engine.force_enter(pair, side)

        return await self._audited(actor, "force_enter", {"pair": pair_text, "side": side}, run)

    def _exit_target(self, target: str) -> tuple[int | str, EngineControl]:
        """A trade id or a pair, and the running engine to ask."""
        engine = self._running_engine()
        return (int(target) if target.isdigit() else self._parse_pairs([target])[0]), engine

    async def check_force_exit(self, target: str) -> None:
        """Raise what ``force_exit`` would be refused with before it reaches the engine: the engine stopped, a bad
        pair, or no position on that pair at the exchange (a trade id is looked up by the engine on the exit);
        a read."""
        resolved, _ = self._exit_target(target)
        if isinstance(resolved, str) and not [p for p in await self.client.fetch_positions([resolved])
                                              if p.pair == resolved]:
            raise ServiceError("refused", f"no open trade matches {target!r}", reason="no_open_trade",
                               params={"target": target[:40]})

    async def force_exit(self, actor: Actor, target: str) -> list[int]:
        async def run() -> list[int]:
            resolved, engine = self._exit_target(target)
            closed = await engine.force_exit(resolved)
            if not closed:
                raise ServiceError("refused", f"no open trade matches {target!r}", reason="no_open_trade",
                                   params={"target": target[:40]})
            return closed

        return await self._audited(actor, "force_exit", {"target": target}, run)

    # -- reads ------------------------------------------------------------------------------------------------------
    async def _stop_prices(self) -> dict[str, Decimal]:
        stops: dict[str, Decimal] = {}
        for order in await self.client.fetch_open_orders(None):
            if order.is_open and order.is_stop and order.trigger_price:
                stops[order.pair] = order.trigger_price
        return stops

    async def positions(self) -> list[PositionView]:
        raw = await self.client.fetch_positions()
        stops = await self._stop_prices() if raw else {}
        views = []
        for p in raw:
            distance = None
            if p.mark_price and p.liquidation_price and p.liquidation_price > 0:
                distance = abs(p.mark_price - p.liquidation_price) / p.mark_price
            views.append(PositionView(p.pair, p.side, abs(p.contracts), p.entry_price, p.mark_price,
                                      p.liquidation_price, distance, p.unrealized_pnl, p.notional,
                                      p.leverage or self.leverage,
                                      stops.get(p.pair)))
        return views

    async def balance(self) -> BalanceView:
        b = await self.client.fetch_balance()
        return BalanceView(b.wallet, b.available, b.unrealized_pnl, b.margin_balance, b.maintenance_margin)

    async def now(self) -> dt.datetime:
        """'Now' for the views that count days: in dry-run the exchange's clock (the simulator's replay time, so a
        replay of May 2025 shows its own days), live the wall clock. The wall clock when the exchange does not
        answer."""
        if self.settings.dry_run:
            try:
                return dt.datetime.fromtimestamp(await self.client.fetch_time() / 1000, dt.timezone.utc)
            except ExchangeError as exc:
                log.info("exchange clock unavailable (%s); using the wall clock", exc)
        return dt.datetime.now(dt.timezone.utc)

    async def pnl(self, period: pnl_mod.Period = "day", count: int = 7, tz: str = "UTC",
                  now: dt.datetime | None = None) -> list[pnl_mod.PeriodPnL]:
        now = now or await self.now()
        return await asyncio.to_thread(pnl_mod.pnl_by_period, self.core.sessions, period, count, tz=tz, now=now)

    async def trades(self, limit: int = 10) -> list[pnl_mod.TradeView]:
        return await asyncio.to_thread(pnl_mod.recent_trades, self.core.sessions, limit)

    async def performance(self) -> list[pnl_mod.PairPerformance]:
        return await asyncio.to_thread(pnl_mod.performance_by_pair, self.core.sessions)

    async def status(self) -> StatusView:
        stats = self.client.latency.rest_stats()
        try:
            open_positions = len(await self.client.fetch_positions())
        except ExchangeError:
            open_positions = -1  # unknown: the exchange did not answer
        return StatusView(
            running=bool(self.engine and self.engine.running),
            paused=self.paused,
            dry_run=self.settings.dry_run,
            leverage=self.leverage,
            pairs=tuple(self.pairs),
            open_positions=open_positions,
            latency_tier=self.client.latency.tier.name.lower(),
            latency_p99_ms=stats.p99_ms,
            ml=await asyncio.to_thread(_ml_state, self.settings.models_dir),
            now_ms=int(time.time() * 1000),
            ml_latest=_ml_latest(self.pairs),
        )

    async def health(self) -> HealthView:
        snap = await asyncio.to_thread(self.health_monitor.snapshot)
        stats = self.client.latency.rest_stats()
        problems = []
        if not snap.db_ok:
            problems.append(f"database: {snap.db_error}")
        if not snap.ok and snap.db_ok:
            problems.append("disk space low")
        if self.client.latency.tier.value > 0:
            problems.append(f"latency tier {self.client.latency.tier.name.lower()}")
        return HealthView(
            ok=snap.ok and not problems,
            db_ok=snap.db_ok,
            db_latency_ms=snap.db_latency_ms,
            disk_free_bytes=snap.disk_free_bytes,
            uptime_s=snap.uptime_s,
            engine_running=bool(self.engine and self.engine.running),
            latency_tier=self.client.latency.tier.name.lower(),
            latency_p50_ms=stats.p50_ms,
            latency_p99_ms=stats.p99_ms,
            api_errors=self.client.api_errors,
            problems=tuple(problems),
        )


    # -- strategy parameters applied at run time (hyperopt results, through the confirmed path) -------------------
    def strategy_params(self) -> dict[str, Any]:
        """Parameters applied at run time for the strategy in force (merged over the config's at every engine
        start); empty when none were applied, or they were for another strategy or no longer fit it."""
        from trader.strategy.reference import STRATEGIES

        stored = self.core.runtime_state.get("strategy_params")
        if not isinstance(stored, dict) or stored.get("strategy") != self.strategy:
            return {}
        try:
            return hyperopt_job.checked_params(STRATEGIES[self.strategy], stored.get("params") or {})
        except (KeyError, ValueError) as exc:
            log.warning("applied strategy parameters ignored: %s", exc)
            return {}

    def _checked_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked against the strategy in force's declared parameters, or the ServiceError saying why
        they do not fit."""
        from trader.strategy.reference import STRATEGIES

        if not params:
            raise ServiceError("invalid_argument", "no parameters to apply", reason="no_params")
        try:
            return hyperopt_job.checked_params(STRATEGIES[self.strategy], params)
        except ValueError as exc:
            raise ServiceError("invalid_argument", str(exc), reason="bad_params",
                               params={"strategy": self.strategy, "names": sorted(params)}) from None

    async def check_strategy_params(self, params: dict[str, Any]) -> None:
        """Raise what ``apply_strategy_params(params)`` would be refused with for their content (the caller's role
        is the front end's gate and is checked again on the change); a read."""
        self._checked_params(params)

    async def apply_strategy_params(self, actor: Actor, params: dict[str, Any]) -> AppliedParams:
        """Validate ``params`` against the strategy in force's declared parameters, store them in
        RuntimeState (they survive a restart and win over the config) and restart a running engine so they take
        effect. Admins only; audited."""
        async def run() -> AppliedParams:
            if actor.role != "admin":
                raise ServiceError("refused", "only an admin may change strategy parameters", reason="admin_only_params")
            checked = self._checked_params(params)
            async with self._lock:
                old = self.strategy_params()
                merged = {**old, **checked}
                stored = {"strategy": self.strategy,
                          "params": {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()},
                          "applied_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
                await asyncio.to_thread(self._remember, "strategy_params", stored, actor)
                restarted = self.engine is not None and self.engine.running
                await self._reload_engine()
                return AppliedParams(self.strategy, old, merged, restarted)

        arguments = {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}}
        return await self._audited(actor, "apply_strategy_params", arguments, run)


    # -- the strategy in force (/strategy) and what it sees (/signals) -----------------------------------------------
    async def set_strategy(self, actor: Actor, name: str) -> StrategyChange:
        """Trade ``name`` (one of STRATEGIES) from now on: validated (registered, and able to build its timeframes
        from the engine's feed), stored in RuntimeState (survives a restart, wins over the config) and a running
        engine restarted with it. Applied parameters stay keyed to their strategy (they apply again when it does).
        Audited."""
        async def run() -> StrategyChange:
            wanted = await self._strategy_choice(name)
            async with self._lock:
                old = self.strategy
                await asyncio.to_thread(self._remember, "strategy", wanted, actor)
                restarted = self.engine is not None and self.engine.running
                await self._reload_engine()
                return StrategyChange(old, wanted, restarted)

        return await self._audited(actor, "set_strategy", {"strategy": name[:40]}, run)

    async def _strategy_choice(self, name: str) -> str:
        """The registered strategy ``name`` names, if it can build its timeframes from the engine's feed; else the
        ServiceError saying why not."""
        from trader.strategy.multitf import TimeframeError
        from trader.strategy.preflight import live_requirements
        from trader.strategy.reference import STRATEGIES

        wanted = name.strip().lower()
        if wanted not in STRATEGIES:
            raise ServiceError("invalid_argument",
                               f"unknown strategy {name[:40]!r} (known: {', '.join(sorted(STRATEGIES))})",
                               reason="unknown_strategy", params={"name": name[:40], "choices": sorted(STRATEGIES)})
        timeframe = self.settings.timeframes[0]
        try:
            await asyncio.to_thread(live_requirements, wanted, None, timeframe)
        except TimeframeError as exc:
            raise ServiceError("refused", f"{wanted} cannot trade the {timeframe} feed: {exc}",
                               reason="strategy_timeframe", params={"strategy": wanted, "timeframe": timeframe}) from None
        return wanted

    async def check_strategy(self, name: str) -> None:
        """Raise what ``set_strategy(name)`` would be refused with now; a read."""
        await self._strategy_choice(name)

    async def risk(self) -> RiskView:
        """Each risk rule's state in the running engine (budget used, loss streak, drawdown, volatility, correlation
        blocks, recent decisions), as a snapshot taken between bars; the configured limits either way."""
        from trader.risk.limits import risk_params

        limits = {**risk_params(self.settings), **self.strategy_params()}
        engine = self.engine
        running = engine is not None and engine.running
        read = getattr(engine, "risk_status", None)
        state = await read() if running and read is not None else None
        market_status = getattr(engine, "market_status", None)
        market = await market_status() if running and market_status is not None else None
        return RiskView(self.strategy, running, state, limits, market)

    async def execution(self, days: int = 30) -> ExecutionView:
        """Execution quality per pair over the last ``days`` (slippage against the decision price in basis points,
        time to fill, maker share, slices and market fallbacks: the ledger's executions of this mode, dry-run or
        live) and, while the engine runs, each pair's liquidity tier and the maintenance schedule."""
        from sqlalchemy import select

        from trader.execution.quality import summarize
        from trader.persistence.models import Execution

        if not 1 <= days <= 365:
            raise ServiceError("invalid_argument", f"days must be 1..365, got {days}", reason="days_range",
                               params={"low": 1, "high": 365, "days": days})
        since = await self.now() - dt.timedelta(days=days)
        dry_run = self.settings.dry_run

        def read() -> list[Any]:
            with self.core.sessions() as session:
                return list(session.scalars(select(Execution).where(Execution.time >= since,
                                                                     Execution.dry_run.is_(dry_run))))
        rows = await asyncio.to_thread(read)
        engine = self.engine
        running = engine is not None and engine.running
        status = getattr(engine, "market_status", None)
        market = await status() if running and status is not None else None
        return ExecutionView(days, dry_run, tuple(summarize(rows)), running, market)

    async def propose_risk_params(self, days: int = 30) -> Any:
        """Re-tune the risk parameters over the closed trades of the last ``days`` (trader.risk.tuning: optuna TPE,
        only ever lowering risk, judged out of sample). A read: the proposal is applied, if at all, through
        ``apply_strategy_params`` (an admin confirms; audited). Refused with fewer trades than tuning needs."""
        from trader.risk.limits import limits_from_params, risk_params
        from trader.risk.tuning import MIN_TRADES, outcomes_from_ledger, tune

        if not 7 <= days <= 365:
            raise ServiceError("invalid_argument", f"days must be 7..365, got {days}", reason="days_range",
                               params={"low": 7, "high": 365, "days": days})
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        current = limits_from_params({**risk_params(self.settings), **self.strategy_params()})

        def run() -> Any:
            return tune(outcomes_from_ledger(self.core.sessions, since, self.settings.dry_run), current)

        try:
            return await asyncio.to_thread(run)
        except ValueError as exc:  # too few closed trades to tune on (the only refusal tune() makes)
            raise ServiceError("refused", str(exc), reason="too_few_trades", params={"needed": MIN_TRADES}) from None

    async def signals(self, pair: str | None = None) -> SignalsView:
        """What the running strategy sees (its ``status()``: per pair regime, route, readiness, last graded
        signal, the open position's setup; the fusion weights), as a snapshot taken between bars. ``available``
        is False when the engine is stopped, or runs a strategy without such a view (the reference strategy)."""
        wanted = None
        if pair is not None:
            try:
                wanted = normalize_pair(pair, self.settings.stake_currency)
            except ValueError as exc:
                raise ServiceError("invalid_argument", str(exc), reason="bad_pair", params={"text": pair[:40]}) from None
        engine = self.engine
        running = engine is not None and engine.running
        read = getattr(engine, "strategy_status", None)
        status = await read() if running and read is not None else None
        if status is None:
            return SignalsView(self.strategy, running, False, {}, ())
        pairs = dict(status.get("pairs") or {})
        if wanted is not None:
            if wanted not in pairs:
                raise ServiceError("refused", f"{wanted} is not traded by the running engine",
                                   reason="pair_not_in_engine", params={"pair": wanted})
            pairs = {wanted: pairs[wanted]}
        return SignalsView(self.strategy, running, True, pairs, tuple(status.get("fusion") or ()))


@dataclass(frozen=True)
class RiskView:
    strategy: str  # in force
    running: bool
    state: dict[str, Any] | None  # RiskBook.status() of the running strategy; None when stopped or without one
    limits: dict[str, Any]  # the configured rules (trader.risk.limits.risk_params over applied parameters)
    market: dict[str, Any] | None = None  # the market side's state (liquidity tiers, maintenance); None: not running


@dataclass(frozen=True)
class StrategyView:
    current: str  # in force (RuntimeState over the config)
    configured: str  # the config file's
    choices: tuple[str, ...]  # STRATEGIES, sorted
    running: bool


@dataclass(frozen=True)
class StrategyChange:
    old: str
    new: str
    restarted: bool  # a running engine was restarted with it; otherwise it applies at the next start


@dataclass(frozen=True)
class SignalsView:
    strategy: str  # in force
    running: bool
    available: bool  # the running strategy has a view (status()); False when stopped or without one
    pairs: dict[str, dict[str, Any]]  # pair -> regime, route, ready, last_signal, position
    fusion: tuple[dict[str, Any], ...]  # fusion_table rows: regime, source, weight, hit_rate, low, high, n, muted


@dataclass(frozen=True)
class AppliedParams:
    strategy: str
    before: dict[str, Any]  # what was applied before (not the config's defaults)
    after: dict[str, Any]  # now in force over the config's
    restarted: bool  # a running engine was restarted with them; otherwise they apply at its next start


def _ml_latest(pairs: Any) -> tuple[int, float] | None:
    """The running engine's newest model prediction over ``pairs`` (trader.ml.live.LivePredictions): its bar's
    close and its age in seconds; None without one."""
    from trader.strategy.fusion import get_ml_provider

    latest = getattr(get_ml_provider(), "latest", None)
    if latest is None:
        return None
    found = [r for r in (latest(p) for p in pairs) if r is not None and r.score is not None]
    if not found:
        return None
    newest = max(found, key=lambda r: r.close_ms)
    return newest.close_ms, max(0.0, time.time() - newest.computed_ms / 1000)


def _ml_state(models_dir: Any) -> Any:
    """The active models for /status (checked, never loaded); None when the registry cannot be read."""
    try:
        from trader.ml.live import ml_state

        return ml_state(models_dir)
    except Exception as exc:  # a status read must not fail over the models
        log.warning("ML state unreadable: %s", exc)
        return None
