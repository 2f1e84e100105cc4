"""Risky actions ask first; only the asker's fresh, unused Confirm does anything, and the state is re-checked."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import ADMIN, TRADER, VIEWER
from trader.persistence.audit import Actor


async def test_leverage_change_is_confirmed_applied_and_audited(bot) -> None:
    question = await bot.ask(TRADER, "/leverage 20")
    assert question.text.startswith("Change leverage from 10x to 20x on BTC/USDT, ETH/USDT?")
    assert [b.text for b in question.buttons()] == ["✅ Confirm", "✖ Cancel"]
    assert bot.service.leverage == 10  # asking changes nothing
    outcome = await bot.press(TRADER, question)
    assert outcome.text == "Leverage changed from 10x to 20x on BTC/USDT, ETH/USDT." and outcome.buttons() == []
    assert bot.service.leverage == 20 and bot.sim.exchange.leverage["ETHUSDT"] == 20
    (record,) = [a for a in bot.audit(5) if a.action == "set_leverage"]
    assert (record.outcome, record.actor.user_id, record.actor.role) == ("ok", TRADER, "trader")
    too_high = await bot.ask(TRADER, "/leverage 60")  # above max_leverage: said at once, nothing to confirm
    assert too_high.text == ("Not accepted: leverage must be between 1 and 50 (max_leverage in the config). "
                             "Nothing was changed.") and not too_high.buttons()


async def test_cancel_does_nothing(bot) -> None:
    question = await bot.ask(TRADER, "/whitelist add SOL")
    outcome = await bot.press(TRADER, question, "n")
    assert outcome.text == "Cancelled. Nothing was done."
    assert bot.service.pairs == ["BTC/USDT:USDT", "ETH/USDT:USDT"]


async def test_forged_replayed_expired_and_foreign_presses_are_refused(bot) -> None:
    question = await bot.ask(TRADER, "/leverage 15")
    data = question.buttons()[0].callback_data
    nonce = data.split(":")[1]
    refusals = []
    for forged in ("cf:AAAAAAAAAAAAAAAA:y", f"cf:{nonce[::-1]}:y", f"cf:{nonce}:x", "flatten", "", "cf::y"):
        query = bot.tg.press_button(TRADER, question, forged or " ", strict=False)
        refusals.append((await bot.tg.wait_for_answer(query)).text)
    assert set(refusals) == {"This button is not valid."}
    # Someone else (an admin, even) cannot confirm the trader's question, from their own chat or by forging it.
    query = bot.tg.press_button(ADMIN, question, data, strict=False)
    assert (await bot.tg.wait_for_answer(query)).text == "This confirmation belongs to someone else."
    assert bot.service.leverage == 10
    outcome = await bot.press(TRADER, question)  # the owner still can
    assert bot.service.leverage == 15 and outcome.text.startswith("Leverage changed")
    query = bot.tg.press_button(TRADER, question, data, strict=False)  # replay
    assert (await bot.tg.wait_for_answer(query)).text == "This button was already used."
    reasons = [a.arguments["reason"] for a in bot.audit(20) if a.action == "confirm"]
    assert sorted(set(reasons)) == ["foreign", "forged", "replayed"] and reasons.count("forged") == 6
    assert [a.outcome for a in bot.audit(20) if a.action == "set_leverage"] == ["ok"]

    late = await bot.ask(TRADER, "/leverage 12")
    bot.advance(61)
    outcome = await bot.press(TRADER, late)
    assert outcome.text.startswith("This confirmation has expired") and bot.service.leverage == 15
    expired = [a for a in bot.audit(5) if a.action == "set_leverage"][0]
    assert (expired.outcome, expired.detail) == ("refused", "confirmation expired")


async def test_an_expired_question_swept_away_is_still_called_expired(bot) -> None:
    old = await bot.ask(TRADER, "/leverage 12")
    bot.advance(61)
    await bot.ask(TRADER, "/leverage 13")  # creating a new question sweeps the old one
    query = bot.tg.press_button(TRADER, old, old.buttons()[0].callback_data)
    assert (await bot.tg.wait_for_answer(query)).text.startswith("This confirmation has expired")
    assert bot.service.leverage == 10


async def test_state_is_checked_again_on_press(bot) -> None:
    first = await bot.ask(TRADER, "/leverage 20")
    second = await bot.ask(ADMIN, "/leverage 30")
    assert (await bot.press(ADMIN, second)).text.startswith("Leverage changed from 10x to 30x")
    stale = await bot.press(TRADER, first)
    assert stale.text.startswith("Things changed since you were asked") and bot.service.leverage == 30


async def test_a_demoted_or_revoked_user_cannot_confirm(bot) -> None:
    question = await bot.ask(ADMIN, "/users grant 2002 trader")
    assert question.text.startswith("Give user 2002 the trader role?")
    assert (await bot.press(ADMIN, question)).text == "User 2002 is now trader."
    assert bot.deps.access.role_of(2002) == "trader"
    asked = await bot.ask(2002, "/leverage 20")
    demote = await bot.ask(ADMIN, "/users grant 2002 viewer")
    assert (await bot.press(ADMIN, demote)).text == "User 2002 is now viewer."
    outcome = await bot.press(2002, asked)
    assert outcome.text.startswith("Your role no longer allows this") and bot.service.leverage == 10
    asked = await bot.ask(2002, "/status")
    revoke = await bot.ask(ADMIN, "/users revoke 2002")
    assert (await bot.press(ADMIN, revoke)).text == "User 2002 no longer has access."
    refused = await bot.ask(2002, "/status")
    assert "not on its list of users" in refused.text
    actions = [(a.action, a.outcome) for a in bot.audit(12)]
    assert ("role_grant", "ok") in actions and ("role_revoke", "ok") in actions
    assert ("set_leverage", "denied") in actions and ("telegram_access", "denied") in actions
    listing = (await bot.ask(ADMIN, "/users")).text
    assert "1002: trader, from the config file" in listing and "2002" not in listing
    audit = (await bot.ask(ADMIN, "/audit 5")).text
    assert audit.startswith("📜 Last 5 actions:") and "role_revoke" in audit
    assert bot.app.job_queue.get_jobs_by_name("daily-report:2002") == ()


async def test_granted_user_can_use_the_bot_and_the_grant_survives(bot) -> None:
    question = await bot.ask(ADMIN, "/users grant 2003 viewer")
    await bot.press(ADMIN, question)
    assert (await bot.ask(2003, "/status")).text.startswith("📊 Status")
    assert "needs the trader role" in (await bot.ask(2003, "/flatten")).text
    listing = (await bot.ask(ADMIN, "/users")).text
    assert f"2003: viewer, granted by {ADMIN}" in listing
    bot.deps.roles._cache = None  # a fresh process reads the grant back from the database
    assert bot.deps.access.role_of(2003) == "viewer"


async def test_whitelist_changes_go_through_confirmation(bot) -> None:
    question = await bot.ask(TRADER, "/whitelist add solusdt")
    assert question.text.startswith("Add SOL/USDT to the traded pairs?")
    outcome = await bot.press(TRADER, question)
    assert outcome.text == "Added: SOL/USDT.\nTraded pairs: BTC/USDT, ETH/USDT, SOL/USDT"
    assert bot.service.pairs[-1] == "SOL/USDT:USDT"
    # What the service can tell before the press is said at once, with no confirmation offered.
    again = await bot.ask(TRADER, "/whitelist add BTC/USDT:USDT")
    assert again.text == "Not done: already in the pair list: BTC/USDT." and not again.buttons()
    refused = await bot.ask(TRADER, "/whitelist add DOGE")
    assert refused.text == "Not accepted: not traded on the exchange: DOGE/USDT. Nothing was changed."
    assert not refused.buttons()
    question = await bot.ask(TRADER, "/whitelist remove ETH SOL")
    assert (await bot.press(TRADER, question)).text == "Removed: ETH/USDT, SOL/USDT.\nTraded pairs: BTC/USDT"
    missing = await bot.ask(TRADER, "/whitelist remove SOL")
    assert missing.text == "Not done: not in the pair list: SOL/USDT (see /whitelist)." and not missing.buttons()
    last = await bot.ask(TRADER, "/whitelist remove BTC")
    assert last.text == "Refused: the pair list cannot be empty. Nothing was changed." and not last.buttons()
    assert (await bot.ask(VIEWER, "/status")).text.count("Pairs: BTC/USDT\n") == 1


async def test_start_stop_and_forced_trades_with_an_engine(bot) -> None:
    started = await bot.press(TRADER, await bot.ask(TRADER, "/start_trading"))
    assert started.text.startswith("▶ Trading started.") and "Engine: running" in started.text
    again = await bot.ask(TRADER, "/start_trading")  # refused at once: nothing to confirm
    assert again.text == "Not done: trading is already running." and not again.buttons()
    question = await bot.ask(TRADER, "/forcelong BTC/USDT")
    assert question.text.startswith("Open a long position on BTC/USDT now at 10x?")
    entered = await bot.press(TRADER, question)
    assert entered.text.startswith("Entry sent: BTC/USDT long, trade #")
    trade_id = entered.text.split("#")[1].rstrip(".")
    (position,) = await bot.service.positions()
    assert (position.pair, position.side) == ("BTC/USDT:USDT", "long")
    short = await bot.press(TRADER, await bot.ask(TRADER, "/forceshort eth"))
    assert short.text.startswith("Entry sent: ETH/USDT short")
    question = await bot.ask(TRADER, f"/forceexit {trade_id}")
    assert question.text.startswith(f"Close #{trade_id} now at market?")
    assert (await bot.press(TRADER, question)).text == f"Exit sent for #{trade_id}: trades #{trade_id}."
    exited = await bot.press(TRADER, await bot.ask(TRADER, "/forceexit ETHUSDT"))
    assert exited.text.startswith("Exit sent for ETH/USDT: trades #")
    assert await bot.service.positions() == []
    nothing = await bot.ask(TRADER, "/forceexit SOL")  # refused at once: nothing to confirm
    assert nothing.text == "Refused: no open trade matches SOL/USDT. Nothing was changed." and not nothing.buttons()
    outside = await bot.ask(TRADER, "/forcelong SOL")
    assert outside.text == "Refused: not in the pair list: SOL/USDT (see /whitelist). Nothing was changed."
    assert not outside.buttons()
    # The checks run again on the press: a position opened after the question was asked refuses the second entry.
    first, second = await bot.ask(TRADER, "/forcelong BTC"), await bot.ask(TRADER, "/forcelong BTC")
    assert (await bot.press(TRADER, first)).text.startswith("Entry sent: BTC/USDT long")
    assert (await bot.press(TRADER, second)).text.startswith("Refused: BTC/USDT already has an open long position of ")
    await bot.press(TRADER, await bot.ask(TRADER, "/forceexit BTC"))
    stopped = await bot.press(TRADER, await bot.ask(TRADER, "/stop"))
    assert stopped.text.startswith("⏹ Trading stopped.") and not bot.service.engine.running


@pytest.mark.parametrize("text", ["/flatten", "/leverage 20", "/start_trading", "/stop", "/whitelist add SOL",
                                  "/forcelong BTC", "/forceshort BTC", "/forceexit 3", "/users grant 9 viewer"])
async def test_every_risky_command_asks_first(bot, text) -> None:
    user = ADMIN
    if text.startswith("/force") or text == "/stop":  # refused at once while the engine is stopped
        await bot.service.start(Actor("telegram", user, "admin"))
    question = await bot.ask(user, text)
    assert [b.text for b in question.buttons()] == ["✅ Confirm", "✖ Cancel"], question.text
    assert all(len(b.callback_data.encode()) <= 64 for b in question.buttons())
    assert "Confirm within 60 seconds." in question.text


async def test_a_chinese_user_hears_refusals_in_chinese_before_any_confirmation(bot) -> None:
    """The façade's refusals (said before the question, and on the press) carry a reason the bot translates: no
    English words reach a zh_CN user besides pairs and commands."""
    await bot.ask(TRADER, "/settings language zh_CN")
    english = re.compile(r"[A-Za-z]{3,}")

    def words(text: str) -> list[str]:  # what is left once pairs, commands and numbers are taken out
        return english.findall(re.sub(r"[A-Z]+/USDT|/\w+|\d", "", text))

    unknown = await bot.ask(TRADER, "/whitelist add FOO")
    assert unknown.text == "不被接受：交易所不交易：FOO/USDT。未做任何更改。" and not unknown.buttons()
    stopped = await bot.ask(TRADER, "/forcelong BTC")
    assert stopped.text.startswith("交易引擎未运行") and not stopped.buttons()
    not_running = await bot.ask(TRADER, "/stop")
    assert not_running.text == "未执行：交易未在运行。" and not not_running.buttons()
    await bot.service.start(Actor("telegram", TRADER, "trader"))
    running = await bot.ask(TRADER, "/start_trading")
    assert running.text == "未执行：交易已在运行。" and not running.buttons()
    await bot.ask(TRADER, "/pause")
    paused = await bot.ask(TRADER, "/forcelong ETH")
    assert paused.text.startswith("已拒绝：开仓已暂停") and not paused.buttons()
    await bot.ask(TRADER, "/resume")
    first, second = await bot.ask(TRADER, "/forcelong ETH"), await bot.ask(TRADER, "/forcelong ETH")
    assert (await bot.press(TRADER, first)).text.startswith("已发送开仓：ETH/USDT")
    refused = await bot.press(TRADER, second)  # checked again on the press
    assert refused.text == "已拒绝：ETH/USDT 已有 0.2 的多头持仓，请先平仓（/forceexit）。未做任何更改。"
    held = await bot.ask(TRADER, "/forcelong ETH")  # and now at once
    assert held.text == refused.text and not held.buttons()
    busy = await bot.ask(TRADER, "/whitelist remove ETH")
    assert busy.text == "已拒绝：ETH/USDT 仍有持仓，请先平仓。未做任何更改。"
    for message in (unknown, stopped, not_running, running, paused, refused, held, busy):
        assert words(message.text) == [], message.text
