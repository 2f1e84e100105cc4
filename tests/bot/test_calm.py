"""A calmer phone: one message per trade event with the orders a tap away, notifications that name who acted and
speak the user's language, /help by purpose, confirmation as structure, days counted by the exchange's clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from bot.i18n import Catalogs
from bot.telegram import confirm
from bot.telegram.handlers import all_commands
from bot.telegram.notifier import DETAILS_TTL_S, compose, render
from bot.telegram.registry import GROUPS, Command, Registry
from tests.bot.conftest import ADMIN, TRADER, VIEWER, is_notification, running_bot
from tests.bot.test_notifier import publish_from_engine_thread
from trader.events import (
    EngineStateChanged,
    LatencyTierChanged,
    OrderFilled,
    OrderPlaced,
    RiskAction,
    StopHit,
    StopMoved,
)

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")
QUICK = {"backoff_s": 0.05, "retries": 2, "send_timeout_s": 1.0, "bundle_s": 0.2}


def entry_burst(pair: str = "SOL/USDT:USDT", trade_id: int = 7) -> list:
    def placed(purpose: str, amount: str | None, price: str | None) -> OrderPlaced:
        return OrderPlaced(pair=pair, side="long", purpose=purpose, client_order_id=f"c-{purpose}-{price}",
                           amount=Decimal(amount) if amount else None, price=Decimal(price) if price else None,
                           trade_id=trade_id)

    return [placed("entry", "278", None),
            OrderFilled(pair=pair, side="long", purpose="entry", client_order_id="c-entry", amount=Decimal("278"),
                        price=Decimal("143.61"), trade_id=trade_id),
            placed("stop", None, "142.89"), placed("take_profit", "83", "144.76"),
            placed("take_profit", "83", "146.48"), placed("take_profit", "112", "150.79")]


def test_an_entry_and_an_exit_are_one_message_each() -> None:
    text, details = compose(EN, entry_burst())
    assert text == "🟢 Entered SOL/USDT long: 278 @ 143.61, stop 142.89, targets 144.76 / 146.48 / 150.79"
    assert details is not None and details.startswith(text) and details.count("\n• ") == 6
    assert "📤 Take-profit order placed: SOL/USDT long 112 @ 150.79" in details
    zh, _ = compose(ZH, entry_burst())
    assert zh == "🟢 已开仓 SOL/USDT 多：278 @ 143.61，止损 142.89，止盈 144.76 / 146.48 / 150.79"
    stop = [OrderFilled(pair="ETH/USDT:USDT", side="long", purpose="stop", client_order_id="s", amount=Decimal("0.2"),
                        price=Decimal("3001.25"), realized_pnl=Decimal("-4.5"), trade_id=2),
            StopHit(pair="ETH/USDT:USDT", trade_id=2, price=Decimal("3001.25"), realized_pnl=Decimal("-4.5"))]
    assert compose(EN, stop)[0] == "🛑 Stop hit: ETH/USDT long 0.2 @ 3,001.25, PnL -4.50"
    target = [OrderFilled(pair="ETH/USDT:USDT", side="long", purpose="take_profit", client_order_id="t",
                          amount=Decimal("0.1"), price=Decimal("3100"), realized_pnl=Decimal("9.5"), trade_id=2),
              OrderPlaced(pair="ETH/USDT:USDT", side="long", purpose="stop", client_order_id="s2", amount=None,
                          price=Decimal("3000"), trade_id=2),
              StopMoved(pair="ETH/USDT:USDT", trade_id=2, old_price=Decimal("2950"), new_price=Decimal("3000"))]
    assert compose(EN, target)[0] == "✅ Take-profit filled: ETH/USDT long 0.1 @ 3,100.00, PnL +9.50; stop now 3,000.00"
    moved = target[1:]
    assert compose(EN, moved)[0] == "↕ Stop moved on ETH/USDT: 2,950.00 → 3,000.00"  # no "(-)" without a reason


def test_words_are_translated() -> None:
    latency = LatencyTierChanged(old="normal", new="safe", p99_ms=620.0)
    assert render(ZH, latency) == "⏱ 延迟等级 正常 → 安全模式（p99 620 ms）"
    risk = RiskAction(action="size_halved", reason="latency tier safe")
    assert render(ZH, risk) == "🛡 风控动作：开仓规模减半：延迟等级：安全模式"
    assert render(EN, risk) == "🛡 Risk action: entry size halved: latency tier safe mode"
    paused = EngineStateChanged(state="paused", actor="telegram:1001")
    assert render(EN, paused, {1001: "Ada"}) == "⚙ Engine entries paused (by Ada)"
    assert render(ZH, paused) == "⚙ 引擎已暂停开仓（操作者 用户 1001）"


async def test_the_phone_gets_one_message_per_trade_event_with_details_a_tap_away(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=QUICK) as bot:
        await bot.ask(ADMIN, "/settings notify all off")
        await bot.ask(VIEWER, "/settings notify all off")
        bot.tg.open_private_chat(TRADER)
        publish_from_engine_thread(bot.bus, entry_burst())
        message = await bot.notification(TRADER)
        assert message.text.startswith("🟢 Entered SOL/USDT long: 278 @ 143.61")
        await bot.deps.notifier.drain()
        assert [m.text[:1] for m in bot.tg.sent(TRADER) if is_notification(m.text)] == ["🟢"]
        assert [b.text for b in message.buttons()] == [EN("event.details.button")]
        data = message.buttons()[0].callback_data
        # Bound to its user like every button: someone else's press is refused and changes nothing.
        foreign = bot.tg.press_button(VIEWER, message, data, strict=False)
        assert (await bot.tg.wait_for_answer(foreign)).text == EN("confirm.not_yours")
        query = bot.tg.press_button(TRADER, message, data)
        await bot.tg.wait_for_answer(query)
        shown = await bot.tg.wait_for_edit(message)
        assert EN("event.details.title") in shown.text and "📤 Stop order placed" in shown.text
        assert shown.buttons() == []
        replay = bot.tg.press_button(TRADER, message, data, strict=False)
        assert (await bot.tg.wait_for_answer(replay)).text == EN("confirm.used")
        # An old notification's Details expires: the button goes, the text stays.
        publish_from_engine_thread(bot.bus, entry_burst("BTC/USDT:USDT", 8))
        second = await bot.notification(TRADER)
        bot.advance(DETAILS_TTL_S + 1)
        late = bot.tg.press_button(TRADER, second, second.buttons()[0].callback_data)
        assert (await bot.tg.wait_for_answer(late)).text == EN("event.details.expired")
        kept = await bot.tg.wait_for_edit(second, lambda m: m.buttons() == [])
        assert kept.text == second.text
        reasons = [a.arguments["reason"] for a in bot.audit(20) if a.action == "notification_button"]
        assert sorted(reasons) == ["expired", "foreign", "replayed"]


async def test_a_flatten_says_who_paused(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path, notifier_options=QUICK) as bot:
        for user in (ADMIN, VIEWER):
            bot.tg.open_private_chat(user)
        await bot.ask(TRADER, "/status")  # the gate learns the trader's name ("Tom")
        # The engine's own pause event names no one; the flatten that caused it names the user.
        publish_from_engine_thread(bot.bus, [EngineStateChanged(state="paused", actor=""),
                                             EngineStateChanged(state="flattening", actor=f"telegram:{TRADER}")])
        told = await bot.notification(VIEWER)
        assert told.text == "⚙ Engine entries paused, flattening (by Tom)"
        await bot.deps.notifier.drain()
        assert [m.text for m in bot.tg.sent(VIEWER) if is_notification(m.text)] == [told.text]
        # A /pause: the engine's event and the service's are one message, by the user.
        question = await bot.ask(TRADER, "/pause")
        assert question.text.startswith(EN("control.paused"))
        paused = await bot.notification(VIEWER)
        assert paused.text == "⚙ Engine entries paused (by Tom)"


async def test_help_groups_commands_by_purpose(bot) -> None:
    text = (await bot.ask(ADMIN, "/help")).text
    headings = [EN(f"help.group.{g}") for g in GROUPS]
    positions = [text.index("\n" + h + "\n") for h in headings]
    assert positions == sorted(positions)
    control = text.split(EN("help.group.control"))[1].split(EN("help.group.research"))[0]
    assert "/flatten" in control and "/status" not in control
    viewer = (await bot.ask(VIEWER, "/help")).text
    assert EN("help.group.control") not in viewer and EN("help.group.admin") not in viewer
    assert {c.group for c in all_commands()} == set(GROUPS)


async def test_a_confirm_command_cannot_act_before_the_press(bot) -> None:
    async def sneaky(request):
        await request.service.pause(request.caller.actor)  # acting without asking

    async def honest(request):
        async def run(caller, t):
            await request.service.pause(caller.actor)
            return "paused"
        return confirm.Ask("Pause?", "pause", {}, run)

    registry: Registry = bot.deps.registry
    registry.add(Command("sneaky", sneaky, "trader", "confirm", "help.pause"))
    registry.add(Command("honest", honest, "trader", "confirm", "help.pause"))
    from telegram.ext import CommandHandler
    for name in ("sneaky", "honest"):
        (handler,) = [h for h in registry.handlers() if isinstance(h, CommandHandler) and name in h.commands]
        bot.app.add_handler(handler)
    refused = await bot.ask(TRADER, "/sneaky")
    assert refused.text == EN("error.internal") and not bot.service.paused
    assert [(a.action, a.outcome, a.detail) for a in bot.audit(3)][0] == ("sneaky", "denied", "not confirmed")
    question = await bot.ask(TRADER, "/honest")
    assert not bot.service.paused and [b.text for b in question.buttons()] == [EN("confirm.yes"), EN("confirm.no")]
    assert (await bot.press(TRADER, question)).text == "paused" and bot.service.paused


async def test_pnl_and_report_count_days_by_the_exchange_clock(bot) -> None:
    now = await bot.service.now()
    wall = dt.datetime.now(dt.timezone.utc)
    assert abs((now - wall).total_seconds()) > 86400  # the stepped simulator replays May 2025
    pnl = (await bot.ask(VIEWER, "/pnl")).text
    assert pnl.split("\n")[1].startswith(now.date().isoformat())
    report = (await bot.ask(VIEWER, "/report")).text
    assert now.strftime("%Y-%m-%d") in report.split("\n")[0]
