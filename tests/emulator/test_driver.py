"""The driver side: button presses (honest and forged), waits, and running on a background thread."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest

from bot.emulator import TelegramEmulator


def post(tg: TelegramEmulator, method: str, **params: Any) -> dict[str, Any]:
    """A synchronous client, as a thread outside any event loop would use."""
    body = json.dumps(params).encode()
    request = urllib.request.Request(f"{tg.base_url}{tg.token}/{method}", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["result"]


def keyboard(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": text, "callback_data": data} for text, data in pairs]]}


def test_background_thread_mode_serves_synchronous_callers() -> None:
    with TelegramEmulator() as tg:
        tg.send_text(1001, "/start")
        updates = post(tg, "getUpdates")
        assert updates[0]["message"]["text"] == "/start"
        post(tg, "sendMessage", chat_id=1001, text="welcome")
        assert tg.wait_for_sent_blocking(1001, timeout=2).text == "welcome"
        with pytest.raises(TimeoutError):
            tg.wait_for_sent_blocking(1001, timeout=0.2)


async def test_wait_for_sent_returns_each_message_once_in_order(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    for text in ("first", "second", "third"):
        await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text=text)
    assert (await tg.wait_for_sent(1001, lambda m: m.text == "third")).text == "third"
    assert (await tg.wait_for_sent(1001)).text == "first"
    assert (await tg.wait_for_sent(1001)).text == "second"
    with pytest.raises(TimeoutError, match="sent so far"):
        await tg.wait_for_sent(1001, timeout=0.1)


async def test_an_honest_press_needs_a_real_button_of_the_chat(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text="sure?",
                            reply_markup=keyboard(("Yes", "y:1"), ("No", "n:1")))
    message = tg.sent(1001)[0]
    with pytest.raises(LookupError):
        tg.press_button(1001, message, "made-up")
    with pytest.raises(PermissionError):
        tg.press_button(1002, message, "y:1")
    query = tg.press_button(1001, message, text="No")
    assert query.data == "n:1" and query.message is message
    update = tg.world.updates[-1].to_json()["callback_query"]
    assert update["data"] == "n:1" and update["from"]["id"] == 1001
    assert update["message"]["reply_markup"] == keyboard(("Yes", "y:1"), ("No", "n:1"))
    assert update["chat_instance"] and update["id"]


async def test_a_forged_press_sends_whatever_it_is_told(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text="sure?", reply_markup=keyboard(("Yes", "y:1")))
    message = tg.sent(1001)[0]
    await asyncio.to_thread(post, tg, "deleteMessage", chat_id=1001, message_id=message.message_id)
    with pytest.raises(LookupError):
        tg.press_button(1001, message, "y:1")
    forged = tg.press_button(666, message, "y:999", strict=False)
    assert (forged.user.id, forged.data) == (666, "y:999")


async def test_a_press_after_an_edit_carries_the_current_message(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text="v1", reply_markup=keyboard(("Go", "go")))
    message = tg.sent(1001)[0]
    await asyncio.to_thread(post, tg, "editMessageText", chat_id=1001, message_id=message.message_id, text="v2",
                            reply_markup=keyboard(("Go again", "go2")))
    query = tg.press_button(1001, message, text="Go again")
    assert query.data == "go2"
    assert tg.world.updates[-1].payload["message"]["text"] == "v2"
    assert "edit_date" in tg.world.updates[-1].payload["message"]


async def test_answer_window_expires() -> None:
    async with TelegramEmulator(callback_answer_window=0.05) as tg:
        tg.open_private_chat(1001)
        await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text="?", reply_markup=keyboard(("A", "a")))
        query = tg.press_button(1001, tg.sent(1001)[0], "a")
        await asyncio.sleep(0.1)
        with pytest.raises(Exception, match="400"):
            await asyncio.to_thread(post, tg, "answerCallbackQuery", callback_query_id=query.id)
        assert tg.unanswered_callbacks() == [query]


async def test_slow_telegram_delays_but_delivers(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    tg.slow_down("sendMessage", 0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.to_thread(post, tg, "sendMessage", chat_id=1001, text="late")
    assert loop.time() - began >= 0.3
    assert [m.text for m in tg.sent(1001)] == ["late"]


def test_an_injection_from_another_thread_wakes_a_waiting_poll() -> None:
    import threading
    import time

    results: list[tuple[float, list[dict[str, Any]]]] = []
    with TelegramEmulator() as tg:
        def poll() -> None:
            began = time.perf_counter()
            updates = post(tg, "getUpdates", timeout=5)
            results.append((time.perf_counter() - began, updates))

        poller = threading.Thread(target=poll)
        poller.start()
        assert tg.world.pulse.wait_until_blocking(lambda: tg.world.polls_waiting > 0, 2)
        time.sleep(0.1)
        tg.send_text(1001, "wake up")
        poller.join(3)
    elapsed, updates = results[0]
    assert [u["message"]["text"] for u in updates] == ["wake up"]
    assert elapsed < 1.0


async def test_ptb_in_the_test_loop_with_the_emulator_on_its_own_thread() -> None:
    from telegram import Update
    from telegram.ext import Application, CommandHandler, ContextTypes

    async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text("pong")

    with TelegramEmulator() as tg:
        app = Application.builder().token(tg.token).base_url(tg.base_url).build()
        app.add_handler(CommandHandler("ping", ping))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=10)
            await tg.wait_for_poll()
            tg.send_text(1001, "/ping")
            reply = await tg.wait_for_sent(1001, timeout=3)
            await app.updater.stop()
            await app.stop()
    assert reply.text == "pong"


async def test_blocking_and_returning_produce_my_chat_member_updates(tg: TelegramEmulator) -> None:
    from telegram import Bot, Update

    tg.block(1001)
    tg.send_text(1001, "/start")
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        updates = await bot.get_updates()
    kinds = [(u.my_chat_member.new_chat_member.status if u.my_chat_member else u.message.text) for u in updates]
    assert kinds == ["kicked", "member", "/start"]
    assert all(isinstance(u, Update) for u in updates)


async def test_a_user_edit_is_an_edited_message_update(tg: TelegramEmulator) -> None:
    from telegram import Bot

    original = tg.send_text(1001, "/leverage 3")
    tg.edit_text(original, "/leverage 20")
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        updates = await bot.get_updates()
    assert updates[0].message.text == "/leverage 3"
    edited = updates[1].edited_message
    assert (edited.message_id, edited.text, edited.edit_date is not None) == (original.message_id, "/leverage 20", True)
    assert edited.entities[0].type == "bot_command"
