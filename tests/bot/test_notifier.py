"""Engine events reach each user at their level and in their language; Telegram trouble never holds up the
publisher (the engine), and what cannot be delivered is retried, then dropped."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest

from bot.telegram.formatting import split_text
from tests.bot.conftest import ADMIN, TRADER, VIEWER, running_bot
from trader.events import EngineError, LiquidationWarning, OrderFilled, OrderPlaced, StopHit

FAST = {"backoff_s": 0.05, "retries": 2, "send_timeout_s": 1.0}


def fill(n: int = 1) -> OrderFilled:
    return OrderFilled(pair="BTC/USDT:USDT", side="long", purpose="entry", client_order_id=f"bsm-{n}-entry",
                       amount=Decimal("0.01"), price=Decimal("95000.5"), trade_id=n)


def publish_from_engine_thread(bus, events) -> float:
    """Publish like the engine does, from its own thread; returns the longest single publish() in seconds."""
    longest = [0.0]

    def run() -> None:
        for event in events:
            began = time.perf_counter()
            bus.publish(event)
            longest[0] = max(longest[0], time.perf_counter() - began)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return longest[0]


async def test_each_user_hears_at_their_level_and_language(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=FAST, rate_limit=True) as bot:
        for user in (ADMIN, TRADER, VIEWER):
            bot.tg.open_private_chat(user)
        await bot.ask(TRADER, "/settings language zh_CN")
        await bot.ask(VIEWER, "/settings notify order_filled off")
        await bot.ask(ADMIN, "/settings notify stop_hit silent")
        publish_from_engine_thread(bot.bus, [fill(), StopHit(pair="ETH/USDT:USDT", trade_id=2,
                                                             price=Decimal("3001.25"), realized_pnl=Decimal("-4.5")),
                                             OrderPlaced(pair="BTC/USDT:USDT", side="long", purpose="exit",
                                                         client_order_id="x", amount=None)])
        await bot.deps.notifier.drain()
        texts = {u: [m.text for m in bot.tg.sent(u) if m.text.startswith(("✅", "🛑", "📤"))]
                 for u in (ADMIN, TRADER, VIEWER)}
        assert texts[ADMIN] == ["✅ Entry filled: BTC/USDT long 0.01 @ 95,000.50",
                                "🛑 Stop hit on ETH/USDT @ 3,001.25, PnL -4.50",
                                "📤 Exit order placed: BTC/USDT long - @ -"]
        assert texts[TRADER] == ["✅ 开仓已成交：BTC/USDT 多 0.01 @ 95,000.50", "🛑 ETH/USDT 止损触发 @ 3,001.25，盈亏 -4.50",
                                 "📤 平仓单已提交：BTC/USDT 多 - @ -"]
        assert texts[VIEWER] == ["🛑 Stop hit on ETH/USDT @ 3,001.25, PnL -4.50",
                                 "📤 Exit order placed: BTC/USDT long - @ -"]
        quiet = {(c.params["chat_id"], c.params["text"][:2]): c.params.get("disable_notification")
                 for c in bot.tg.calls("sendMessage") if c.params["text"].startswith(("✅", "🛑", "📤"))}
        assert quiet[(str(ADMIN), "🛑 ")] in (True, "true", "True")  # silent: delivered without a sound
        assert quiet[(str(ADMIN), "✅ ")] in (False, "false", "False", None)
        assert quiet[(str(VIEWER), "📤 ")] in (True, "true", "True")  # order_placed defaults to silent


async def test_an_outage_is_retried_then_dropped_and_never_blocks_the_publisher(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=FAST) as bot:
        await bot.ask(ADMIN, "/settings notify all off")
        await bot.ask(TRADER, "/settings notify all off")
        bot.tg.open_private_chat(VIEWER)
        notifier = bot.deps.notifier
        # Two failures then success: delivered by the retry.
        bot.tg.fail_next("sendMessage", 502, "Bad Gateway", times=2)
        publish_from_engine_thread(bot.bus, [fill(1)])
        assert (await bot.notification(VIEWER)).text.startswith("✅ Entry filled")
        # Telegram down for longer than the retries: dropped with a log line, the next one goes through.
        bot.tg.fail_next("sendMessage", 502, "Bad Gateway", times=3)
        publish_from_engine_thread(bot.bus, [fill(2)])
        await notifier.drain()
        assert notifier.dropped == 1
        publish_from_engine_thread(bot.bus, [fill(3)])
        assert "bsm" not in (await bot.notification(VIEWER)).text
        # Telegram hanging: the engine's publish() still returns at once, every time.
        bot.tg.slow_down("sendMessage", 3.0, times=2)
        longest = publish_from_engine_thread(bot.bus, [fill(n) for n in range(10, 20)])
        assert longest < 0.01
        await notifier.drain(timeout=15)
        assert notifier.delivered >= 2


async def test_a_full_queue_drops_instead_of_growing(write_config, tmp_path) -> None:
    options = {**FAST, "queue_size": 3, "bundle_s": 0}  # each event told at once: the queue is what is tested
    async with running_bot(write_config, tmp_path, notifier_options=options) as bot:
        bot.tg.open_private_chat(VIEWER)
        notifier = bot.deps.notifier
        bot.tg.slow_down("sendMessage", 0.5, times=1)
        longest = publish_from_engine_thread(bot.bus, [fill(n) for n in range(30)])
        assert longest < 0.01
        await asyncio.sleep(0.1)
        assert notifier.dropped >= 30 * 3 - 3 - 3  # three users, three slots (one more may be in flight)
        await notifier.drain(timeout=10)
        assert notifier.queue.qsize() == 0


async def test_long_texts_are_split(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=FAST) as bot:
        bot.tg.open_private_chat(VIEWER)
        long = "\n".join(f"line {i} " + "x" * 90 for i in range(120))
        publish_from_engine_thread(bot.bus, [EngineError(message=long, where="strategy")])
        await bot.deps.notifier.drain()
        pieces = [m.text for m in bot.tg.sent(VIEWER) if m.text]
        assert len(pieces) >= 3 and all(len(p) <= 4096 for p in pieces)
        assert "line 0 " in pieces[0] and "line 119 " in pieces[-1]


async def test_liquidation_warning_and_secrets_are_redacted(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=FAST) as bot:
        bot.tg.open_private_chat(VIEWER)
        bot.core.redactor.add("sk-very-secret-value")
        publish_from_engine_thread(bot.bus, [
            LiquidationWarning(pair="SOL/USDT:USDT", mark_price=Decimal("150"), liquidation_price=Decimal("140"),
                               distance=Decimal("0.0667")),
            EngineError(message=f"auth failed for key sk-very-secret-value and token {bot.tg.token}", where="x")])
        warning = await bot.notification(VIEWER)
        assert warning.text == ("🚨 Liquidation warning SOL/USDT: mark 150.00, liquidation 140.00, only 6.67% away")
        error = await bot.notification(VIEWER)
        assert "sk-very-secret-value" not in error.text and bot.tg.token not in error.text
        assert error.text.count("***") == 2


def test_split_text_keeps_lines_and_limits() -> None:
    assert split_text("a\nb", limit=3) == ["a\nb"]
    assert split_text("aa\nbb\ncc", limit=5) == ["aa\nbb", "cc"]
    assert split_text("x" * 10, limit=4) == ["xxxx", "xxxx", "xx"]
    assert split_text("") == ["-"]


async def test_a_user_who_never_opened_the_chat_is_skipped_until_they_write(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=FAST) as bot:
        await bot.ask(ADMIN, "/settings notify all off")
        await bot.ask(TRADER, "/settings notify all off")
        notifier = bot.deps.notifier
        publish_from_engine_thread(bot.bus, [fill(1)])  # the viewer never wrote: Telegram says chat not found
        await notifier.drain()
        assert notifier.unreachable == {VIEWER} and notifier.dropped == 1
        publish_from_engine_thread(bot.bus, [fill(2)])
        await notifier.drain()
        assert notifier.dropped == 1  # skipped, not attempted
        await bot.ask(VIEWER, "/start")
        publish_from_engine_thread(bot.bus, [fill(3)])
        assert (await bot.notification(VIEWER)).text.startswith("✅ Entry filled")
        assert notifier.unreachable == set()


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_flood_control_is_waited_out_not_counted_as_a_failure(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options={**FAST, "retries": 0}) as bot:
        await bot.ask(ADMIN, "/settings notify all off")
        await bot.ask(TRADER, "/settings notify all off")
        bot.tg.open_private_chat(VIEWER)
        bot.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        began = time.perf_counter()
        publish_from_engine_thread(bot.bus, [fill(1)])
        assert (await bot.notification(VIEWER)).text.startswith("✅ Entry filled")
        assert time.perf_counter() - began >= 1.0 and bot.deps.notifier.dropped == 0
