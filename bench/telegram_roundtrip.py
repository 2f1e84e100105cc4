"""Round-trip latency through the Telegram emulator with the real python-telegram-bot Application:
an injected update until the bot's answer is stored. This is the floor under any command's reply time.

    .venv/bin/python bench/telegram_roundtrip.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.emulator import TelegramEmulator


async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text("<b>running</b> · 3 positions", parse_mode="HTML", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("Refresh", callback_data="refresh")]]))


async def refresh(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer("refreshed")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(rounds: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        await one()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    print(f"{name:<34} n={len(samples):<4} p50={percentile(samples, 0.50):6.2f} ms  "
          f"p95={percentile(samples, 0.95):6.2f} ms  max={max(samples):6.2f} ms  mean={statistics.fmean(samples):6.2f} ms")


async def main(rounds: int) -> None:
    async with TelegramEmulator() as tg:
        app = Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
        app.add_handler(CommandHandler("status", status))
        app.add_handler(CallbackQueryHandler(refresh))
        await app.initialize()
        await app.start()
        await app.updater.start_polling(timeout=10)
        try:
            await tg.wait_for_poll()
            last = None

            async def command() -> None:
                nonlocal last
                tg.send_text(1001, "/status")
                last = await tg.wait_for_sent(1001)

            async def press() -> None:
                assert last is not None
                query = tg.press_button(1001, last, "refresh")
                await tg.wait_for_answer(query)

            await measure(10, command)  # warm-up: connections, handler caches
            report("update -> sendMessage received", await measure(rounds, command))
            report("button press -> answerCallbackQuery", await measure(rounds, press))
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
