"""The real bot (build_application) polling the Telegram emulator, in front of a real TradingService on the
exchange simulator. Users: 1001 admin, 1002 trader, 1003 viewer (config file); anyone else is a stranger."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.emulator import TelegramEmulator
from bot.emulator.state import ChatMessage
from bot.i18n import LANGUAGES, Catalogs
from bot.telegram.app import build_application
from bot.telegram.context import DEPS_KEY, BotDeps
from tests.exchange.conftest import make_client
from trader.bootstrap import Core, open_core
from trader.config.loader import load_settings
from trader.config.schema import Settings
from trader.events import EventBus
from trader.exchange.client import ExchangeClient
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.service.research import ResearchService
from trader.service.service import TradingService
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
ADMIN, TRADER, VIEWER, STRANGER = 1001, 1002, 1003, 4242
SIZES = {"BTC/USDT:USDT": Decimal("0.01"), "ETH/USDT:USDT": Decimal("0.2"), "SOL/USDT:USDT": Decimal("2")}
_ids = itertools.count(1)
# The fixed start of every notification template, in both languages: how tests tell them from answers.
NOTIFICATION_PREFIXES = tuple(sorted({
    text.split("{")[0] for language in LANGUAGES for key, text in Catalogs().texts[language].items()
    if key.startswith("event.msg.") and text.split("{")[0].strip()}))


def is_notification(text: str | None) -> bool:
    return bool(text) and text.startswith(NOTIFICATION_PREFIXES)  # type: ignore[union-attr]


@dataclass
class SimEngine:
    """Stands in for the live engine (being built elsewhere) through the service's EngineControl protocol; its
    entries and exits are real orders on the simulator, so what the bot reports can be checked there."""

    client: ExchangeClient
    running: bool = False
    paused: bool = False
    trades: dict[int, str] = field(default_factory=dict)

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def pause_entries(self, reason: str = "paused") -> None:
        self.paused = True

    def resume_entries(self) -> None:
        self.paused = False

    async def force_enter(self, pair: str, side: str) -> int:
        trade_id = next(_ids)
        await self.client.create_order(OrderRequest(pair, "buy" if side == "long" else "sell", "market",
                                                    client_order_id(trade_id, "entry"), amount=SIZES[pair]))
        self.trades[trade_id] = pair
        return trade_id

    async def force_exit(self, target: int | str) -> list[int]:
        ids = [i for i, p in self.trades.items() if i == target or p == target]
        for trade_id in ids:
            pair = self.trades.pop(trade_id)
            for position in await self.client.fetch_positions([pair]):
                await self.client.create_order(OrderRequest(
                    pair, "sell" if position.side == "long" else "buy", "market",
                    client_order_id(trade_id, "exit"), amount=abs(position.contracts), reduce_only=True))
        return ids


@dataclass
class Harness:
    tg: TelegramEmulator
    sim: SimulatorServer
    settings: Settings
    core: Core
    service: TradingService
    bus: EventBus
    app: Any
    clock: list[float]
    research: ResearchService

    @property
    def deps(self) -> BotDeps:
        return self.app.bot_data[DEPS_KEY]

    async def ask(self, user_id: int, text: str, timeout: float = 5.0) -> ChatMessage:
        """The bot's answer to `text`, skipping event notifications that may arrive in between."""
        self.tg.send_text(user_id, text)
        return await self.tg.wait_for_sent(user_id, lambda m: not is_notification(m.text), timeout=timeout)

    async def notification(self, user_id: int, timeout: float = 5.0) -> ChatMessage:
        return await self.tg.wait_for_sent(user_id, lambda m: is_notification(m.text), timeout=timeout)

    async def press(self, user_id: int, message: ChatMessage, which: str = "y", **kw: Any) -> ChatMessage:
        data = next(b.callback_data for b in message.buttons() if b.callback_data.endswith(f":{which}"))
        query = self.tg.press_button(user_id, message, data, **kw)
        await self.tg.wait_for_answer(query)
        return await self.tg.wait_for_edit(message)

    def audit(self, limit: int = 20) -> list[Any]:
        return self.core.audit.recent(limit)

    def advance(self, seconds: float) -> None:
        self.clock[0] += seconds


def make_settings(write_config: Callable[..., Path], tmp_path: Path, tg: TelegramEmulator,
                  **telegram: Any) -> Settings:
    config = {
        "pair_whitelist": ["BTC", "ETH"], "leverage": 10, "max_leverage": 50,
        "user_data_dir": str(tmp_path / "ud"),
        "telegram": {"enabled": True, "api_base_url": f"http://127.0.0.1:{tg.port}",
                     "users": {str(ADMIN): "admin", str(TRADER): "trader", str(VIEWER): "viewer"}, **telegram},
    }
    return load_settings(write_config(config), environ={"TELEGRAM_TOKEN": tg.token}, dotenv_path=None)


@asynccontextmanager
async def running_bot(write_config: Callable[..., Path], tmp_path: Path, *, engine: bool = True,
                      sim_config: SimConfig | None = None, notifier_options: dict[str, Any] | None = None,
                      rate_limit: bool = False, **telegram: Any) -> AsyncIterator[Harness]:
    async with TelegramEmulator() as tg, \
            SimulatorServer(sim_config or SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as sim:
        settings = make_settings(write_config, tmp_path, tg, **telegram)
        core = open_core(settings, console_logging=False, file_logging=False)
        client = make_client(sim)
        await client.initialize(settings.pair_whitelist, settings.leverage)
        bus = EventBus()
        service = TradingService(settings, core, client, bus, engine=SimEngine(client) if engine else None)
        clock = [1000.0]
        research = ResearchService(settings, core, current=lambda: (service.pairs, service.leverage))
        app = build_application(settings, service, core, bus, clock=lambda: clock[0], rate_limit=rate_limit,
                                notifier_options=notifier_options, research=research)
        for user_id, name in ((ADMIN, "Ada"), (TRADER, "Tom"), (VIEWER, "Vic"), (STRANGER, "Eve")):
            tg.user(user_id, first_name=name)
        await app.initialize()
        await app.start()
        await app.updater.start_polling(timeout=10)
        try:
            await tg.wait_for_poll()
            yield Harness(tg, sim, settings, core, service, bus, app, clock, research)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await research.close_backtests()
            await client.close()
            core.close()


@pytest.fixture
async def bot(write_config: Callable[..., Path], tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(write_config, tmp_path) as harness:
        yield harness
