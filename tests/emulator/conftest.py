"""The emulator and a real python-telegram-bot Application polling it over 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from telegram.ext import Application, ApplicationBuilder

from bot.emulator import TelegramEmulator


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
def builder(tg: TelegramEmulator) -> Callable[[], ApplicationBuilder]:
    def make() -> ApplicationBuilder:
        return Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url)

    return make


@pytest.fixture
def running(tg: TelegramEmulator) -> Callable[[Application[Any, Any, Any, Any, Any, Any]], AbstractAsyncContextManager[Any]]:
    """Runs an Application the way run_polling does, but inside the test's loop, and waits until it polls."""

    @asynccontextmanager
    async def run(app: Application[Any, Any, Any, Any, Any, Any]) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
        await app.initialize()
        await app.start()
        await app.updater.start_polling(timeout=10)
        try:
            await tg.wait_for_poll()
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    return run
