"""The live engine as the service sees it (``EngineControl``).

The engine's configuration is rebuilt at every start from what the service holds (whitelist, leverage and strategy
as changed at run time, the RuntimeState strategy over the config's), then finished by ``prepare`` (the composition
root's: the warm-up sizes and the fusion book's path the chosen strategy needs), so a restart is how such a change
reaches a running engine. Forced entries report the id of
the trade the engine's ledger opened for them; forced exits name trades by id or by pair.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import backtrader as bt
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from trader.live.engine import EngineConfig, EngineStateError, ForceRefused, LiveEngine
from trader.persistence.models import Trade
from trader.service.errors import ServiceError

TRADE_WAIT_S = 10.0  # how long a forced entry may take to be filled and booked in the ledger
START_WAIT_S = 60.0  # how long a forced entry waits for an engine that is starting
STATUS_WAIT_S = 10.0  # how long a read of the strategy's view waits for its turn


class LiveEngineControl:
    def __init__(
        self,
        make_engine: Callable[[EngineConfig], LiveEngine],
        base_config: EngineConfig,
        sessions: sessionmaker[Session],
        current: Callable[[], tuple[list[str], int]],
        strategy_params: Callable[[], Mapping[str, Any]] | None = None,
        strategy: Callable[[], str] | None = None,
        prepare: Callable[[EngineConfig], EngineConfig] | None = None,
    ):
        self._make_engine = make_engine
        self._base = base_config
        self._sessions = sessions
        self._current = current  # () -> (pairs, leverage) as the service holds them now
        self._strategy_params = strategy_params  # () -> parameters applied at run time (over the base config's)
        self._strategy = strategy  # () -> the strategy in force (RuntimeState over the config), read at every start
        self._prepare = prepare  # EngineConfig -> EngineConfig the chosen strategy can run with
        self._paused_reason: str | None = None
        self._risk_scale = 1.0
        self.engine: LiveEngine | None = None

    @property
    def running(self) -> bool:
        return self.engine is not None and self.engine.state == "running"

    @property
    def paused(self) -> bool:
        return self._paused_reason is not None

    async def start(self) -> None:
        pairs, leverage = self._current()
        applied = dict(self._strategy_params()) if self._strategy_params is not None else {}
        name = self._strategy() if self._strategy is not None else self._base.strategy
        config = dataclasses.replace(self._base, strategy=name, pairs=list(pairs), leverage=leverage,
                                     strategy_params={**self._base.strategy_params, **applied})
        if self._prepare is not None:
            try:
                config = self._prepare(config)
            except ValueError as exc:  # a strategy that cannot run on this timeframe (TimeframeError)
                raise ServiceError("refused", f"strategy {name}: {exc}", reason="strategy_cannot_start",
                                   params={"strategy": name}) from None
        engine = self._make_engine(config)
        if self._paused_reason is not None:
            engine.pause(self._paused_reason)
        engine.set_risk_scale(self._risk_scale)
        self.engine = engine  # visible while starting, so a forced entry can wait for it
        await engine.start_async(actor="service")

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop_async(actor="service")

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def pause_entries(self, reason: str = "paused") -> None:
        """Refuse new entries: ``paused`` (a person, flatten) or ``latency`` (the latency tier): the engine's
        refusal of a forced entry says which."""
        self._paused_reason = reason
        if self.engine is not None:
            self.engine.pause(reason)

    def resume_entries(self) -> None:
        self._paused_reason = None
        if self.engine is not None:
            self.engine.resume()

    def set_risk_scale(self, scale: float) -> None:
        self._risk_scale = scale
        if self.engine is not None:
            self.engine.set_risk_scale(scale)

    def _latest_trade_id(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.max(Trade.id))) or 0)

    def _open_trades(self, pair: str | None = None, trade_id: int | None = None) -> list[Trade]:
        with self._sessions() as session:
            query = select(Trade).where(Trade.status == "open", Trade.backtest_run_id.is_(None))
            if pair is not None:
                query = query.where(Trade.pair == pair)
            if trade_id is not None:
                query = query.where(Trade.id == trade_id)
            return list(session.scalars(query))

    async def force_enter(self, pair: str, side: str) -> int:
        engine = await self._engine_when_running()
        before = await asyncio.to_thread(self._latest_trade_id)
        try:
            await asyncio.wrap_future(engine.force_enter(pair, "long" if side == "long" else "short"))
        except ForceRefused as exc:
            # A risk rule's refusal carries its name and numbers, the engine's others a reason with its parameters:
            # front ends say either in the user's words.
            if exc.rule:
                raise ServiceError("refused", f"no entry on {pair}: {exc}", reason="risk_rule", params={"pair": pair},
                                   rule=exc.rule, values=exc.values, pair=pair) from None
            raise ServiceError("refused", f"no entry on {pair}: {exc}", reason=exc.reason, params=exc.params) from None
        entry = engine.forced.get(pair)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TRADE_WAIT_S
        while loop.time() < deadline:
            # A trade row exists from the moment its entry is about to be sent (the ledger's write-ahead); the
            # entry is done once the row carries the filled amount, booked after the fill and its stop.
            trades = [t for t in await asyncio.to_thread(self._open_trades, pair) if t.id > before and t.amount]
            if trades:
                return max(t.id for t in trades)
            if entry is not None and entry.status == bt.Order.Completed:
                # Filled, but into a trade that was already open (the strategy entered the pair a moment before).
                current = await asyncio.to_thread(self._open_trades, pair)
                if current:
                    return max(t.id for t in current)
            if entry is not None and entry.status in (bt.Order.Rejected, bt.Order.Margin, bt.Order.Canceled,
                                                      bt.Order.Expired):
                why = entry.info.get("reject_reason") or bt.Order.Status[entry.status].lower()
                raise ServiceError("refused", f"the entry on {pair} was not placed: {why}", reason="entry_not_placed",
                                   params={"pair": pair, "why": str(why)})
            await asyncio.sleep(0.05)
        raise ServiceError("exchange", f"the entry on {pair} was handed to the exchange side but its fill was "
                                       f"not recorded within {TRADE_WAIT_S:.0f} s; check /positions before trying again",
                           reason="entry_unconfirmed", params={"pair": pair, "seconds": f"{TRADE_WAIT_S:.0f}"})

    async def _engine_when_running(self) -> LiveEngine:
        """The running engine; one that is still starting is waited for (a restart after a leverage or whitelist
        change takes seconds), one that is stopped is a refusal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WAIT_S
        while self.engine is not None and self.engine.state == "starting" and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return self._running_engine()

    async def force_exit(self, target: int | str) -> list[int]:
        engine = self._running_engine()
        trades = await asyncio.to_thread(
            self._open_trades, target if isinstance(target, str) else None, target if isinstance(target, int) else None
        )
        if not trades:
            return []
        pairs = sorted({t.pair for t in trades})
        for pair in pairs:
            if pair not in engine.config.pairs:
                raise ServiceError("refused", f"{pair} is not traded by the running engine; use /flatten",
                                   reason="exit_use_flatten", params={"pair": pair})
            if not await asyncio.wrap_future(engine.force_exit(pair)):
                raise ServiceError("refused", f"the engine holds no position on {pair} to exit",
                                   reason="no_engine_position", params={"pair": pair})
        # Say what happened, not what was asked: each exit is followed to its fill or its refusal.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TRADE_WAIT_S
        for pair in pairs:
            order = engine.forced_exits.get(pair)
            while order is not None and order.alive() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if order is None:
                continue
            if order.status in (bt.Order.Rejected, bt.Order.Margin, bt.Order.Canceled, bt.Order.Expired):
                why = order.info.get("reject_reason") or bt.Order.Status[order.status].lower()
                raise ServiceError("refused", f"the exit on {pair} was not executed: {why}", reason="exit_not_executed",
                                   params={"pair": pair, "why": str(why)})
            if order.alive():
                raise ServiceError("exchange", f"the exit on {pair} was sent but no fill was confirmed within "
                                               f"{TRADE_WAIT_S:.0f} s; check /positions",
                                   reason="exit_unconfirmed", params={"pair": pair, "seconds": f"{TRADE_WAIT_S:.0f}"})
        return sorted(t.id for t in trades)

    async def resync(self) -> list[str] | None:
        """The running engine re-reads the account (fills, positions); None when no engine runs."""
        if not self.running:
            return None
        assert self.engine is not None
        return await self.engine.resync_async()

    async def strategy_status(self) -> dict[str, Any] | None:
        """A snapshot of the running strategy's ``status()`` (LiveEngine.strategy_view), None for a strategy
        without one; a refusal when no engine runs."""
        return await self._strategy_read(lambda engine: engine.strategy_view())

    async def risk_status(self) -> dict[str, Any] | None:
        """A snapshot of the running strategy's RiskBook (LiveEngine.risk_view), None for a strategy without one;
        a refusal when no engine runs."""
        return await self._strategy_read(lambda engine: engine.risk_view())

    async def _strategy_read(self, read: Callable[[LiveEngine], concurrent.futures.Future[Any]]) -> Any:
        """``read(engine)``, a snapshot the strategy takes on its next turn, waited for up to STATUS_WAIT_S."""
        engine = self._running_engine()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(read(engine)), STATUS_WAIT_S)
        except EngineStateError:
            raise ServiceError("not_running", "trading is not running", reason="engine_stopped") from None
        except TimeoutError:
            raise ServiceError("exchange", f"the strategy did not answer within {STATUS_WAIT_S:.0f} s "
                                           "(busy with a bar); try again", reason="strategy_busy",
                               params={"seconds": f"{STATUS_WAIT_S:.0f}"}) from None

    async def market_status(self) -> dict[str, Any] | None:
        """The running engine's market side (liquidity tiers, maintenance schedule: MarketWatch.snapshot(), read
        on the engine's loop); None when it runs none."""
        engine = self._running_engine()
        watch = engine.desk.market if engine.desk is not None else None
        if watch is None:
            return None

        async def snap() -> dict[str, Any]:
            return watch.snapshot()
        return await engine.host.wrap(snap())

    def _running_engine(self) -> LiveEngine:
        if self.engine is None or self.engine.state != "running":
            raise ServiceError("not_running", "trading is not running", reason="engine_stopped")
        return self.engine
