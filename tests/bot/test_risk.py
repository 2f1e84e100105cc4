"""/risk (viewer) and the risk rule notifications, against the Telegram emulator and the message catalogs."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from bot.i18n import Catalogs
from bot.telegram.notifier import render
from tests.bot.conftest import TRADER, VIEWER
from trader.events import EventBus, RiskRuleHit
from trader.risk.audit import audit_risk_rules
from trader.risk.book import RiskBook
from trader.risk.limits import RiskLimits

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _book() -> RiskBook:
    """A RiskBook that has seen a loss streak, a drawdown, a volatility reading and a correlation block."""
    book = RiskBook(RiskLimits())
    for h in range(40):  # BTC and ETH move alike
        book.observe(BTC, (1000 + h) * 3_600_000, 100.0 * (1.01 if h % 2 else 0.99) ** h)
        book.observe(ETH, (1000 + h) * 3_600_000, 2000.0 * (1.01 if h % 2 else 0.99) ** h)
    book.see_wallet(10_000.0)
    for _ in range(3):
        book.opened(ETH, 1, 0.02)
        book.closed(ETH, -50.0, book.wallet - 400.0)
    book.opened(ETH, 1, 0.01)
    book.decide(BTC, 1, 0.02, 8_800.0, vol_rank=0.95)  # correlated with the open ETH long: refused
    return book


async def test_risk_shows_each_rules_state(bot) -> None:
    stopped = (await bot.ask(VIEWER, "/risk")).text
    assert "Trading is not running" in stopped and "risk per trade 2.00%" in stopped
    engine = bot.service.engine
    engine.running = True
    state = copy.deepcopy(_book().status())

    async def risk_status() -> dict[str, Any]:
        return state

    engine.risk_status = risk_status
    text = (await bot.ask(VIEWER, "/risk")).text
    assert text.startswith("⚖️ Risk — rsi_bollinger")
    assert "Budget: 1.00% used of 10.00% (configured 10.00%); 1 of 3 positions" in text
    assert "Loss streak: 3 in a row (halves from 3); size × 0.50" in text
    assert "Drawdown: 12.00% below the 10000.00 USDT peak" in text
    assert "Correlation blocks: 1 (limit 0.80)" in text
    assert "Correlation: long BTC/USDT entry refused: 1h returns correlate 1.00 with the open ETH/USDT" in text
    assert "Volatility (ATR percentile): BTC/USDT 95.00%" in text
    assert "Usage:" in (await bot.ask(VIEWER, "/risk now")).text
    await bot.ask(TRADER, "/settings language zh_CN")
    zh = (await bot.ask(TRADER, "/risk")).text
    assert "连续亏损：3 笔" in zh and "相关性拦截：1 次" in zh and "开仓被拒" in zh


def test_each_decision_reads_in_both_languages() -> None:
    events = [
        RiskRuleHit(rule="loss_streak", effect="shrunk", pair=BTC, side="long",
                    values={"losses": 3, "limit": 3, "factor": 0.5}),
        RiskRuleHit(rule="total_risk", effect="blocked", pair=ETH, side="short",
                    values={"used": 0.1, "limit": 0.1, "wanted": 0.02, "room": 0.0}),
        RiskRuleHit(rule="volatility", effect="shrunk", pair=BTC, side="long",
                    values={"percentile": 0.97, "limit": 0.9, "factor": 0.5}),
        RiskRuleHit(rule="liquidity", effect="shrunk", pair=BTC, side="long", values={"tier": "mild", "factor": 0.5}),
    ]
    en = [render(EN, e) for e in events]
    assert en[0] == ("🛡 Risk rule — Loss streak: long BTC/USDT entry made smaller: 3 losses in a row: size × 0.50 "
                     "until a win")
    assert en[1] == ("🛡 Risk rule — Total risk budget: short ETH/USDT entry refused: open risk 10.00% of 10.00%, "
                     "wanted 2.00%, room 0.00%")
    assert "ATR percentile 97.00% above 90.00%" in en[2]
    assert en[3].startswith("🛡 Risk rule — Liquidity: long BTC/USDT entry made smaller")
    zh = [render(ZH, e) for e in events]
    assert "连续亏损" in zh[0] and "开仓缩小" in zh[0] and "总风险预算" in zh[1] and "开仓被拒" in zh[1]


async def test_decisions_are_audited() -> None:
    rows: list[tuple] = []

    class Audit:
        def record(self, actor, action, arguments, outcome, detail) -> None:
            rows.append((actor.source, action, arguments, outcome, detail))

    bus = EventBus()
    audit_risk_rules(bus, Audit(), asyncio.get_running_loop())
    bus.publish(RiskRuleHit(rule="correlation", effect="blocked", pair=BTC, side="long",
                            values={"with": ETH, "correlation": 0.93, "limit": 0.8}))
    for _ in range(100):
        if rows:
            break
        await asyncio.sleep(0.01)
    assert rows == [("engine", "risk_rule", {"rule": "correlation", "effect": "blocked", "pair": BTC, "side": "long",
                                             "v_with": ETH, "v_correlation": 0.93, "v_limit": 0.8},
                     "refused", "correlation blocked")]


async def test_risktune_offers_a_proposal_and_applies_it_only_through_the_confirmed_path(bot) -> None:
    from tests.bot.conftest import ADMIN
    from trader.risk.tuning import Proposal

    refused = (await bot.ask(ADMIN, "/risktune")).text
    assert "at least 30 are needed" in refused  # an empty ledger: nothing to tune on
    assert "needs the" in (await bot.ask(TRADER, "/risktune")).text
    assert "is not a whole number from 7 to 365" in (await bot.ask(ADMIN, "/risktune 3")).text
    current = {"risk_per_trade": 0.02, "max_total_risk": 0.1, "loss_streak": 3, "streak_size": 0.5,
               "max_drawdown": 0.2, "drawdown_budget": 0.5}

    async def propose(days: int) -> Proposal:
        return Proposal(90, current, {"risk_per_trade": 0.012, "loss_streak": 2}, 1.0, 2.0, 0.5, 0.9)

    bot.service.propose_risk_params = propose
    shown = await bot.ask(ADMIN, "/risktune 60")
    assert "last 60 days: 90 closed trades" in shown.text and "risk_per_trade: 2.00% → 1.20%" in shown.text
    assert bot.service.strategy_params() == {}  # nothing applied before Apply and Confirm
    query = bot.tg.press_button(ADMIN, shown, shown.buttons()[0].callback_data)
    await bot.tg.wait_for_answer(query)
    question = await bot.tg.wait_for_sent(ADMIN, lambda m: bool(m.buttons()))
    assert "Apply these parameters" in question.text and "risk_per_trade" in question.text
    done = await bot.press(ADMIN, question)
    assert "Parameters applied" in done.text
    assert bot.service.strategy_params() == {"risk_per_trade": 0.012, "loss_streak": 2}
    assert any(a.action == "apply_strategy_params" and a.outcome == "ok" for a in bot.audit())

    async def nothing_better(days: int) -> Proposal:
        return Proposal(90, current, {}, 1.0, 2.0, 0.5, 0.4)

    bot.service.propose_risk_params = nothing_better
    kept = await bot.ask(ADMIN, "/risktune")
    assert "keep them" in kept.text and not kept.buttons()


async def test_the_weekly_offer_goes_to_admins_and_applies_only_when_confirmed(bot) -> None:
    from bot.telegram.handlers.risk import WEEKLY_JOB, offer_tuning
    from tests.bot.conftest import ADMIN
    from trader.risk.tuning import Proposal

    assert bot.app.job_queue.get_jobs_by_name(WEEKLY_JOB)  # scheduled with the bot
    assert await offer_tuning(bot.app.bot, bot.deps) == 0  # no trades: nothing offered, nobody disturbed
    current = {"risk_per_trade": 0.02, "max_total_risk": 0.1, "loss_streak": 3, "streak_size": 0.5,
               "max_drawdown": 0.2, "drawdown_budget": 0.5}

    async def propose(days: int) -> Proposal:
        return Proposal(80, current, {"max_total_risk": 0.06}, 1.0, 1.5, 0.4, 0.7)

    bot.service.propose_risk_params = propose
    await bot.ask(ADMIN, "/help")  # Telegram delivers only to a user who opened the chat
    assert await offer_tuning(bot.app.bot, bot.deps) == 1  # the one admin
    offer = await bot.tg.wait_for_sent(ADMIN, lambda m: bool(m.buttons()))
    assert "This week's risk re-tuning" in offer.text and "max_total_risk: 10.00% → 6.00%" in offer.text
    assert bot.service.strategy_params() == {}
    query = bot.tg.press_button(ADMIN, offer, offer.buttons()[0].callback_data)
    await bot.tg.wait_for_answer(query)
    question = await bot.tg.wait_for_sent(ADMIN, lambda m: "Apply these parameters" in (m.text or ""))
    await bot.press(ADMIN, question)
    assert bot.service.strategy_params() == {"max_total_risk": 0.06}
