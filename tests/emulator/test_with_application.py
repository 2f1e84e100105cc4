"""The real python-telegram-bot Application against the emulator, over real sockets."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest
from PIL import Image
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import AIORateLimiter, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot.emulator import TelegramEmulator

Context = ContextTypes.DEFAULT_TYPE


async def start(update: Update, context: Context) -> None:
    user = update.effective_user
    await update.message.reply_text(f"Hello {user.first_name}, your id is {user.id}")


async def menu(update: Update, context: Context) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Confirm", callback_data="confirm:7"),
                                      InlineKeyboardButton("Cancel", callback_data="cancel:7")]])
    await update.message.reply_text("Flatten 3 positions?", reply_markup=keyboard)


async def on_button(update: Update, context: Context) -> None:
    query = update.callback_query
    action = query.data.split(":")[0]
    await query.answer(f"{action} received")
    await query.edit_message_text(f"Outcome: {action} by {query.from_user.id}")


async def test_start_command_gets_a_reply(tg: TelegramEmulator, builder: Any, running: Any) -> None:
    app = builder().build()
    app.add_handler(CommandHandler("start", start))
    tg.user(1001, first_name="Ana")
    async with running(app):
        sent = tg.send_text(1001, "/start")
        reply = await tg.wait_for_sent(1001)
    assert sent.entities == ({"type": "bot_command", "offset": 0, "length": 6},)
    assert reply.text == "Hello Ana, your id is 1001"
    assert reply.from_bot and reply.chat.id == 1001
    assert reply.message_id == sent.message_id + 1
    assert [c.method for c in tg.calls()][:2] == ["getMe", "deleteWebhook"]


async def test_addressed_command_form_reaches_the_handler(tg: TelegramEmulator, builder: Any, running: Any) -> None:
    app = builder().build()
    app.add_handler(CommandHandler("start", start))
    async with running(app):
        tg.send_text(1001, f"/start@{tg.bot.username}")
        reply = await tg.wait_for_sent(1001)
        tg.send_text(1001, "/start@some_other_bot")
        with pytest.raises(TimeoutError):
            await tg.wait_for_sent(1001, timeout=0.5)
    assert reply.text.startswith("Hello")


async def test_button_press_is_answered_and_edits_the_message(tg: TelegramEmulator, builder: Any, running: Any) -> None:
    app = builder().build()
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CallbackQueryHandler(on_button))
    async with running(app):
        tg.send_text(1001, "/menu")
        question = await tg.wait_for_sent(1001)
        assert [b.text for b in question.buttons()] == ["Confirm", "Cancel"]
        query = tg.press_button(1001, question, "confirm:7")
        answer = await tg.wait_for_answer(query)
        edited = await tg.wait_for_edit(question)
    assert answer.text == "confirm received" and not answer.show_alert
    assert edited.text == "Outcome: confirm by 1001"
    # Editing the text without reply_markup removes the keyboard, as in Telegram.
    assert edited.buttons() == []
    assert [r.text for r in edited.history] == ["Flatten 3 positions?"]
    assert edited.history[0].reply_markup is not None
    assert tg.unanswered_callbacks() == []


async def test_a_png_arrives_byte_exact_and_can_be_downloaded(tg: TelegramEmulator, builder: Any, running: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4, 3), dpi=100)
    axes.plot([1, 3, 2, 5])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    png = buffer.getvalue()

    async def chart(update: Update, context: Context) -> None:
        await update.message.reply_photo(png, caption="<b>equity</b>", parse_mode=ParseMode.HTML)

    app = builder().build()
    app.add_handler(CommandHandler("chart", chart))
    async with running(app):
        tg.send_text(1001, "/chart")
        message = await tg.wait_for_sent(1001)
        # The bot can fetch its own file back through base_file_url, as getFile + download do.
        telegram_file = await app.bot.get_file(message.photo[-1].file_id)
        downloaded = bytes(await telegram_file.download_as_bytearray())
    assert message.photo_bytes == png == downloaded
    assert tg.photos(1001) == [png]
    assert message.caption == "equity"
    assert message.caption_entities == ({"type": "bold", "offset": 0, "length": 6},)
    with Image.open(io.BytesIO(message.photo_bytes)) as image:
        assert image.format == "PNG" and image.size == (400, 300)
    assert (message.photo[-1].width, message.photo[-1].height) == (400, 300)
    assert max(message.photo[0].width, message.photo[0].height) == 90


async def test_document_upload_keeps_name_and_bytes(tg: TelegramEmulator, builder: Any) -> None:
    app = builder().build()
    tg.open_private_chat(1001)
    async with app:
        sent = await app.bot.send_document(1001, b"date,pnl\n2025-05-01,12.5\n", filename="pnl.csv")
    stored = tg.documents(1001)[0]
    assert stored.data == b"date,pnl\n2025-05-01,12.5\n" and stored.file_name == "pnl.csv"
    assert sent.document.file_name == "pnl.csv" and sent.document.file_size == len(stored.data)


async def test_long_poll_delivers_an_update_injected_while_waiting(tg: TelegramEmulator, builder: Any,
                                                                    running: Any) -> None:
    app = builder().build()
    app.add_handler(CommandHandler("start", start))
    async with running(app):
        await asyncio.sleep(0.3)
        assert tg.world.polls_waiting == 1
        began = time.perf_counter()
        tg.send_text(1001, "/start")
        await tg.wait_for_sent(1001)
        elapsed = time.perf_counter() - began
    # The poll's timeout is 10 s; only a poll that wakes on the update answers this fast.
    assert elapsed < 0.5


async def test_two_users_are_told_apart(tg: TelegramEmulator, builder: Any, running: Any) -> None:
    seen: list[tuple[int, int, str]] = []

    async def record(update: Update, context: Context) -> None:
        seen.append((update.effective_user.id, update.effective_chat.id, update.effective_chat.type))
        await update.message.reply_text(f"user {update.effective_user.id}")

    app = builder().build()
    app.add_handler(MessageHandler(filters.TEXT, record))
    group = tg.group(title="desk").id
    async with running(app):
        tg.send_text(1001, "one")
        tg.send_text(1002, "two")
        first = await tg.wait_for_sent(1001)
        second = await tg.wait_for_sent(1002)
        tg.send_text(1001, "/status", chat_id=group, chat_type="supergroup")
        tg.send_text(1002, "/status", chat_id=group, chat_type="supergroup")
        in_group = [await tg.wait_for_sent(group), await tg.wait_for_sent(group)]
    assert (first.text, second.text) == ("user 1001", "user 1002")
    assert seen == [(1001, 1001, "private"), (1002, 1002, "private"), (1001, group, "supergroup"),
                    (1002, group, "supergroup")]
    assert sorted(m.text for m in in_group) == ["user 1001", "user 1002"]
    # In groups PTB's reply_text quotes the message it answers.
    assert all(m.reply_to is not None and not m.reply_to.from_bot for m in in_group)


async def test_formatting_errors_raise_bad_request(tg: TelegramEmulator, builder: Any) -> None:
    from telegram.error import BadRequest

    tg.open_private_chat(1001)
    async with builder().build() as app:
        with pytest.raises(BadRequest, match="parse entities.*start tag \"b\""):
            await app.bot.send_message(1001, "<b>unclosed", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match=r"character '\.' is reserved"):
            await app.bot.send_message(1001, "price 1.5", parse_mode=ParseMode.MARKDOWN_V2)
        with pytest.raises(BadRequest, match="too long"):
            await app.bot.send_message(1001, "x" * 4097)
        with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
            await app.bot.send_message(1001, "pick", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("x", callback_data="n" * 65)]]))
        # The limit counts text after markup is removed.
        fits = await app.bot.send_message(1001, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    assert len(fits.text) == 4096
    assert len(tg.sent(1001)) == 1


async def test_edit_errors_raise_bad_request(tg: TelegramEmulator, builder: Any) -> None:
    from telegram.error import BadRequest

    tg.open_private_chat(1001)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    async with builder().build() as app:
        message = await app.bot.send_message(1001, "state", reply_markup=keyboard)
        with pytest.raises(BadRequest, match="not modified"):
            await app.bot.edit_message_text("state", 1001, message.message_id, reply_markup=keyboard)
        with pytest.raises(BadRequest, match="not modified"):
            await app.bot.edit_message_reply_markup(1001, message.message_id, reply_markup=keyboard)
        stripped = await app.bot.edit_message_reply_markup(1001, message.message_id)
        assert stripped.reply_markup is None
        assert await app.bot.delete_message(1001, message.message_id) is True
        with pytest.raises(BadRequest, match="to edit not found"):
            await app.bot.edit_message_text("later", 1001, message.message_id)
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await app.bot.send_message(555, "nobody started me")
    assert tg.sent(1001)[0].deleted


async def test_answering_a_query_twice_is_refused(tg: TelegramEmulator, builder: Any) -> None:
    from telegram.error import BadRequest

    tg.open_private_chat(1001)
    async with builder().build() as app:
        message = await app.bot.send_message(1001, "go?", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("go", callback_data="go")]]))
        query = tg.press_button(1001, tg.sent(1001)[-1], text="go")
        assert query.message.message_id == message.message_id
        assert await app.bot.answer_callback_query(query.id, "ok") is True
        with pytest.raises(BadRequest, match="(?i)query is too old"):
            await app.bot.answer_callback_query(query.id, "again")


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_flood_control_surfaces_as_retry_after() -> None:
    from telegram.error import RetryAfter
    from telegram.ext import Application

    from bot.emulator import FloodPolicy

    async with TelegramEmulator(flood=FloodPolicy(per_chat_per_second=1.0, per_chat_burst=2)) as tg:
        tg.open_private_chat(1001)
        plain = Application.builder().token(tg.token).base_url(tg.base_url).build()
        async with plain:
            await plain.bot.send_message(1001, "1")
            await plain.bot.send_message(1001, "2")
            with pytest.raises(RetryAfter, match="Retry in 1 second"):
                await plain.bot.send_message(1001, "3")
        assert [m.text for m in tg.sent(1001)] == ["1", "2"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_the_rate_limiter_rides_out_flood_control() -> None:
    from telegram.ext import Application

    from bot.emulator import FloodPolicy

    async with TelegramEmulator(flood=FloodPolicy(per_chat_per_second=2.0, per_chat_burst=1)) as tg:
        tg.open_private_chat(1001)
        limited = (Application.builder().token(tg.token).base_url(tg.base_url)
                   .rate_limiter(AIORateLimiter(max_retries=3)).build())
        async with limited:
            await asyncio.gather(*(limited.bot.send_message(1001, str(i)) for i in range(3)))
        assert sorted(m.text for m in tg.sent(1001)) == ["0", "1", "2"]
        assert any(c.error and c.error.startswith("Too Many Requests") for c in tg.calls("sendMessage"))


async def test_set_my_commands_is_recorded_per_scope_and_language(tg: TelegramEmulator, builder: Any) -> None:
    from telegram import BotCommand, BotCommandScopeAllPrivateChats
    from telegram.error import BadRequest

    from bot.emulator import CommandScope

    tg.user(1001, language_code="zh")
    tg.user(1002, language_code="en")
    async with builder().build() as app:
        await app.bot.set_my_commands([BotCommand("start", "Start"), BotCommand("status", "Status")])
        await app.bot.set_my_commands([BotCommand("status", "状态")], scope=BotCommandScopeAllPrivateChats(),
                                      language_code="zh")
        fetched = await app.bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="zh")
        with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
            await app.bot.set_my_commands([BotCommand("Bad-Name", "x")])
    assert tg.commands() == [{"command": "start", "description": "Start"},
                             {"command": "status", "description": "Status"}]
    assert tg.commands(CommandScope("all_private_chats"), "zh") == [{"command": "status", "description": "状态"}]
    assert [c.command for c in fetched] == ["status"]
    assert tg.menu_for(1001) == [{"command": "status", "description": "状态"}]
    assert [c["command"] for c in tg.menu_for(1002)] == ["start", "status"]


async def test_wrong_token_is_invalid_token(tg: TelegramEmulator) -> None:
    from telegram.error import InvalidToken
    from telegram.ext import Application

    wrong = Application.builder().token("7000000001:AAWrongTokenWrongTokenWrongToken000").base_url(tg.base_url).build()
    with pytest.raises(InvalidToken):
        await wrong.initialize()


async def test_an_injected_outage_is_a_network_error_then_recovers(tg: TelegramEmulator, builder: Any) -> None:
    from telegram.error import NetworkError

    tg.open_private_chat(1001)
    tg.fail_next("sendMessage", 502, "Bad Gateway")
    async with builder().build() as app:
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await app.bot.send_message(1001, "lost")
        await app.bot.send_message(1001, "delivered")
    assert [m.text for m in tg.sent(1001)] == ["delivered"]


async def test_chat_action_and_get_chat(tg: TelegramEmulator, builder: Any) -> None:
    tg.user(1001, first_name="Ana", username="ana_trader")
    tg.open_private_chat(1001)
    async with builder().build() as app:
        await app.bot.send_chat_action(1001, "upload_photo")
        chat = await app.bot.get_chat(1001)
    assert [a.action for a in tg.chat_actions(1001)] == ["upload_photo"]
    assert (chat.id, chat.type, chat.username) == (1001, "private", "ana_trader")
