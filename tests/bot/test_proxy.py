"""The production shape: the service and the exchange client on the engine's loop and thread, the bot on its
own, talking through ServiceProxy."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from bot.emulator import TelegramEmulator
from bot.telegram.app import api_urls, build_application
from tests.bot.conftest import ADMIN, PAIRS, make_settings
from tests.exchange.conftest import make_client
from trader.bootstrap import open_core
from trader.events import EventBus
from trader.service.proxy import ServiceProxy
from trader.service.service import TradingService
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer


class EngineLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def test_the_bot_drives_a_service_on_another_loop(write_config, tmp_path) -> None:
    engine = EngineLoop()
    sim = SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS))
    try:
        async with TelegramEmulator() as tg:
            settings = make_settings(write_config, tmp_path, tg)
            core = open_core(settings, console_logging=False, file_logging=False)
            await engine.run(sim.start())
            client = make_client(sim)
            await engine.run(client.initialize(settings.pair_whitelist, settings.leverage))
            service = TradingService(settings, core, client, EventBus())
            app = build_application(settings, ServiceProxy(service, engine.loop), core)
            await app.initialize()
            await app.start()
            await app.updater.start_polling(timeout=10)
            try:
                await tg.wait_for_poll()
                tg.send_text(ADMIN, "/status")
                assert (await tg.wait_for_sent(ADMIN)).text.startswith("📊 Status")
                tg.send_text(ADMIN, "/leverage 20")
                question = await tg.wait_for_sent(ADMIN)
                tg.press_button(ADMIN, question, question.buttons()[0].callback_data)
                outcome = await tg.wait_for_edit(question)
                assert outcome.text.startswith("Leverage changed from 10x to 20x")
                assert sim.exchange.leverage["BTCUSDT"] == 20
            finally:
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
                await engine.run(client.close())
                core.close()
    finally:
        await engine.run(sim.stop())
        engine.close()


def test_api_base_url_becomes_ptb_urls() -> None:
    assert api_urls(None) == ("https://api.telegram.org/bot", "https://api.telegram.org/file/bot")
    assert api_urls("http://127.0.0.1:8081/") == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")
    assert api_urls("http://127.0.0.1:8081/bot") == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")
