"""Every command end to end through the emulator, with each role; refusals and bad arguments change nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.emulator import CommandScope
from tests.bot.conftest import ADMIN, SIZES, STRANGER, TRADER, VIEWER, running_bot
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id

READS = ["/status", "/positions", "/balance", "/pnl", "/pnl week", "/pnl month", "/trades", "/trades 5",
         "/performance", "/health", "/report", "/help", "/start", "/settings"]


async def test_read_commands_answer_every_role(bot) -> None:
    await bot.service.client.create_order(OrderRequest("BTC/USDT:USDT", "buy", "market", client_order_id(1, "entry"),
                                                       amount=SIZES["BTC/USDT:USDT"]))
    for user in (VIEWER, TRADER, ADMIN):
        answers = {}
        for text in READS:
            answers[text] = (await bot.ask(user, text)).text
            if text == "/report":  # the report's chart follows its text
                chart = await bot.tg.wait_for_sent(user, lambda m: bool(m.photo), timeout=10)
                assert chart.photo_bytes.startswith(b"\x89PNG") and chart.caption
        assert "Leverage: 10x" in answers["/status"] and "Pairs: BTC/USDT, ETH/USDT" in answers["/status"]
        assert "BTC/USDT long 0.01 @" in answers["/positions"] and "liquidation" in answers["/positions"]
        assert "Wallet: 10,000.00" in answers["/balance"] or "Wallet: 9,99" in answers["/balance"]
        assert answers["/pnl"].startswith("📈 PnL by day") and answers["/pnl"].count("USDT,") == 7
        assert answers["/pnl week"].count("USDT,") == 4 and answers["/pnl month"].count("USDT,") == 6
        assert answers["/trades"] == "No trades yet." and answers["/performance"] == "No closed trades yet."
        assert answers["/health"].startswith("🩺 Health") and "API errors: 0" in answers["/health"]
        assert answers["/report"].startswith("🗓 Daily report") and "Equity" in answers["/report"]
        assert "BTC/USDT long" in answers["/report"]
        assert "Notifications:" in answers["/settings"]
    role_line = {VIEWER: "viewer", TRADER: "trader", ADMIN: "admin"}
    greeting = (await bot.ask(VIEWER, "/start")).text
    assert "Hello Vic" in greeting and f"Your role: {role_line[VIEWER]}" in greeting


async def test_help_and_menu_follow_the_role(bot) -> None:
    viewer = (await bot.ask(VIEWER, "/help")).text
    admin = (await bot.ask(ADMIN, "/help")).text
    assert "/status" in viewer and "/flatten" not in viewer and "/users" not in viewer
    assert "/flatten — Close every position and cancel every order ⚠" in admin and "/users" in admin
    await bot.ask(TRADER, "/start")
    menu = {c["command"] for c in await bot.tg.wait_for(lambda: bot.tg.commands(CommandScope("chat", TRADER)))}
    assert "flatten" in menu and "users" not in menu
    admin_menu = await bot.tg.wait_for(lambda: bot.tg.commands(CommandScope("chat", ADMIN)))
    assert {c["command"] for c in admin_menu} >= {"users", "audit"}
    zh_default = bot.tg.commands(CommandScope("all_private_chats"), "zh")
    assert any(c["command"] == "status" and "引擎状态" in c["description"] for c in zh_default)
    assert "flatten" not in {c["command"] for c in bot.tg.commands()}  # strangers see only viewer commands


async def test_role_refusals_are_translated_audited_and_change_nothing(bot) -> None:
    for text in ("/flatten", "/leverage 20", "/start_trading", "/pause", "/whitelist add SOL", "/forcelong BTC",
                 "/users", "/audit"):
        reply = await bot.ask(VIEWER, text)
        assert "needs the" in reply.text and "Nothing was done" in reply.text and not reply.buttons()
    reply = await bot.ask(TRADER, "/users grant 5 admin")
    assert reply.text.startswith("/users needs the admin role")
    assert bot.service.leverage == 10 and bot.service.pairs == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert not bot.service.paused and bot.sim.exchange.leverage["BTCUSDT"] == 10
    denied = [(a.action, a.actor.user_id) for a in bot.audit(20) if a.outcome == "denied"]
    assert ("flatten", VIEWER) in denied and ("users", TRADER) in denied


BAD_ARGUMENTS = [
    ("/leverage ten", "is not a whole number"),
    ("/leverage 0", "is not a whole number from 1 to 125"),
    ("/leverage 10 20", "Usage:"),
    ("/whitelist add", "Usage:"),
    ("/whitelist drop BTC", "Usage:"),
    ("/whitelist add BTC-USD", "is not a pair"),
    ("/forcelong", "Usage:"),
    ("/forcelong BTC ETH", "Usage:"),
    ("/forceshort $$$", "is not a pair"),
    ("/forceexit", "Usage:"),
    ("/forceexit BTC/EUR", "is not a pair"),
    ("/pnl year", "Usage:"),
    ("/trades 0", "is not a whole number"),
    ("/trades many", "is not a whole number"),
    ("/flatten now", "Usage:"),
    ("/settings language klingon", "is not a language"),
    ("/settings report 25:00", "is not a time"),
    ("/settings report 08:00 Mars/Olympus", "is not a time zone"),
    ("/settings notify stop_hit loud", "is not a level"),
    ("/settings notify weather on", "is not a notification kind"),
    ("/settings bogus", "Usage:"),
    ("/users grant abc trader", "is not a Telegram user id"),
    ("/users grant 77 king", "is not a role"),
    ("/users grant 1002 admin", "defined in the config file"),
    ("/users grant 1001 viewer", "cannot change your own role"),
    ("/users revoke 77", "has no granted role"),
    ("/audit 500", "is not a whole number"),
]


async def test_bad_arguments_get_a_clear_error_and_change_nothing(bot) -> None:
    before = (bot.service.leverage, bot.service.pairs, bot.core.runtime_state.all())
    for text, expected in BAD_ARGUMENTS:
        reply = await bot.ask(ADMIN, text)
        assert expected in reply.text, (text, reply.text)
        assert not reply.buttons(), text
    assert (bot.service.leverage, bot.service.pairs, bot.core.runtime_state.all()) == before
    assert bot.deps.user_settings.stored(ADMIN) is None and bot.deps.roles.all() == {}
    assert len(bot.deps.confirmations) == 0


async def test_errors_are_translated_for_chinese_users(bot) -> None:
    saved = await bot.ask(TRADER, "/settings language zh_CN")
    assert saved.text.startswith("已保存。") and "语言：简体中文" in saved.text
    assert "不是有效的交易对" in (await bot.ask(TRADER, "/forcelong BTC-USD")).text
    assert (await bot.ask(TRADER, "/status")).text.startswith("📊 状态")
    assert "需要「管理员」角色" in (await bot.ask(TRADER, "/audit")).text
    menu = bot.tg.commands(CommandScope("chat", TRADER))
    assert any(c["command"] == "flatten" and "平掉所有持仓" in c["description"] for c in menu)


async def test_settings_persist_and_move_the_report(bot) -> None:
    reply = await bot.ask(VIEWER, "/settings report 07:30 Asia/Shanghai")
    assert "Daily report: 07:30 (Asia/Shanghai)" in reply.text
    reply = await bot.ask(VIEWER, "/settings notify order_filled silent")
    assert "Orders filled (order_filled): silent" in reply.text
    await bot.ask(VIEWER, "/settings notify all off")
    stored = bot.deps.user_settings.stored(VIEWER)
    assert stored.timezone == "Asia/Shanghai" and stored.report_time.strftime("%H:%M") == "07:30"
    assert set(stored.notifications.values()) == {"off"}
    (job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{VIEWER}")
    local = job.next_t.astimezone(stored.zone)
    assert (local.hour, local.minute) == (7, 30)


async def test_pause_and_resume_go_through_the_service(bot) -> None:
    reply = await bot.ask(TRADER, "/pause")
    assert reply.text.startswith("⏸ New entries paused") and bot.service.paused
    assert (await bot.ask(TRADER, "/pause")).text == "Not done: entries are already paused."
    assert (await bot.ask(TRADER, "/resume")).text.startswith("▶ New entries resumed") and not bot.service.paused
    audit = [(a.action, a.outcome, a.actor.user_id) for a in bot.audit(5)]
    assert ("pause", "ok", TRADER) in audit and ("pause", "refused", TRADER) in audit


async def test_a_stranger_is_refused_once_audited_and_rate_limited(bot) -> None:
    first = await bot.ask(STRANGER, "/status")
    assert "not on its list of users" in first.text and str(STRANGER) in first.text
    for text in ("/status", "/flatten", "hello"):
        bot.tg.send_text(STRANGER, text)
    with pytest.raises(TimeoutError):
        await bot.tg.wait_for_sent(STRANGER, timeout=0.5)
    denied = [a for a in bot.audit(20) if a.actor.user_id == STRANGER]
    assert len(denied) == 1 and denied[0].outcome == "denied" and denied[0].action == "telegram_access"
    bot.advance(601)  # the next audit window opens, still without a second refusal
    bot.tg.send_text(STRANGER, "/balance")
    await asyncio.sleep(0.3)
    assert len([a for a in bot.audit(20) if a.actor.user_id == STRANGER]) == 2
    assert len(bot.tg.sent(STRANGER)) == 1


async def test_groups_are_refused_unless_allowed(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path) as bot:
        group = bot.tg.group(title="desk").id
        bot.tg.send_text(ADMIN, "/status", chat_id=group, chat_type="supergroup")
        reply = await bot.tg.wait_for_sent(group)
        assert "only answers in a private chat" in reply.text
        bot.tg.send_text(ADMIN, "@" + bot.tg.bot.username + " chatting", chat_id=group, chat_type="supergroup")
        with pytest.raises(TimeoutError):
            await bot.tg.wait_for_sent(group, timeout=0.5)
        assert [a.action for a in bot.audit(5)] == ["telegram_access"]  # the command only, not the chatter
    async with running_bot(write_config, tmp_path / "g", allow_groups=True) as bot:
        group = bot.tg.group(title="desk").id
        bot.tg.send_text(VIEWER, "/status", chat_id=group, chat_type="supergroup")
        assert (await bot.tg.wait_for_sent(group)).text.startswith("📊 Status")
        bot.tg.send_text(VIEWER, "/flatten", chat_id=group, chat_type="supergroup")
        assert "needs the trader role" in (await bot.tg.wait_for_sent(group)).text  # still per user
        bot.tg.send_text(STRANGER, "/status", chat_id=group, chat_type="supergroup")
        with pytest.raises(TimeoutError):
            await bot.tg.wait_for_sent(group, timeout=0.5)


async def test_plain_text_unknown_commands_and_edits(bot) -> None:
    assert (await bot.ask(VIEWER, "hello")).text.startswith("I only understand commands")
    assert (await bot.ask(VIEWER, "/moon")).text.startswith("Unknown command /moon")
    sent = bot.tg.send_text(TRADER, "/status")
    await bot.tg.wait_for_sent(TRADER)
    bot.tg.edit_text(sent, "/flatten")  # an edit must not run a command
    with pytest.raises(TimeoutError):
        await bot.tg.wait_for_sent(TRADER, timeout=0.5)


async def test_engine_commands_without_an_engine_say_so(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, engine=False) as bot:
        # said at once: no confirmation is offered for what cannot be done
        outcome = await bot.ask(TRADER, "/start_trading")
        assert outcome.text == "The trading engine is not running, so this cannot be done now."
        assert not outcome.buttons()
        assert (await bot.ask(TRADER, "/forcelong BTC")).text.startswith("The trading engine is not running")
        assert (await bot.ask(VIEWER, "/status")).text.count("Engine: stopped") == 1
        assert bot.sim.exchange.leverage["BTCUSDT"] == 10 and Decimal(0) == Decimal(0)


async def test_every_answer_is_redacted(bot) -> None:
    bot.core.redactor.add("ETH/USDT")  # stands in for a secret that ended up in a view
    assert "Pairs: BTC/USDT, ***" in (await bot.ask(VIEWER, "/status")).text
    question = await bot.ask(TRADER, "/leverage 20")
    assert "on BTC/USDT, ***?" in question.text
    assert (await bot.press(TRADER, question)).text.endswith("on BTC/USDT, ***.")
    assert not any("ETH/USDT" in (m.text or "") for m in bot.tg.sent())


async def test_a_strangers_button_press_is_answered_once_and_audited(bot) -> None:
    question = await bot.ask(ADMIN, "/leverage 20")
    query = bot.tg.press_button(STRANGER, question, question.buttons()[0].callback_data, strict=False)
    answer = await bot.tg.wait_for_answer(query)
    assert answer.show_alert and "not on its list of users" in answer.text
    again = bot.tg.press_button(STRANGER, question, question.buttons()[0].callback_data, strict=False)
    with pytest.raises(TimeoutError):
        await bot.tg.wait_for_answer(again, timeout=0.5)
    assert bot.service.leverage == 10 and len(bot.deps.confirmations) == 1  # the admin's question still stands
    assert [(a.action, a.actor.user_id) for a in bot.audit(3)][0] == ("telegram_access", STRANGER)
