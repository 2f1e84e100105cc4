"""/execution (viewer), the market side's notifications and a risk rule's refusal, in both languages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from bot.i18n import Catalogs
from bot.telegram.context import service_error_text
from bot.telegram.notifier import render
from tests.bot.conftest import TRADER, VIEWER
from trader.events import RiskAction
from trader.persistence.database import transaction
from trader.persistence.models import Execution
from trader.service.errors import ServiceError

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
UPCOMING = {"phase": "upcoming", "start": "2025-05-05 16:16 UTC", "end": "2025-05-05 16:31 UTC", "lead_min": 30,
            "minutes_to_start": 20.0}
MODERATE = {"pair": BTC, "tier": "moderate", "health": 0.37, "depth": 5_000_000.0, "required": 13_500_000.0,
            "spread": 0.00003, "source": "book", "size_multiplier": 0.0, "entries_allowed": False,
            "close_positions": False}


def _row(pair: str, slip: float, filled: str, price: str, maker: float, ttf: int | None, slices: int = 1,
         fallback: bool = False, when: dt.datetime | None = None) -> Execution:
    return Execution(time=when or dt.datetime.now(dt.timezone.utc), pair=pair, side="buy", purpose="entry",
                     style="market", slices=slices, planned=Decimal(filled), filled=Decimal(filled),
                     decision_price=Decimal(price), average=Decimal(price), slippage_bp=slip, maker_share=maker,
                     time_to_fill_ms=ttf, fallback=fallback, client_order_ids=[], dry_run=True)


async def test_execution_quality_per_pair_and_the_market_now(bot) -> None:
    now = dt.datetime.fromtimestamp(bot.sim.clock.now_ms() / 1000, dt.timezone.utc)
    with transaction(bot.core.sessions) as s:
        s.add_all([_row(BTC, 2.0, "0.1", "100000", 0.0, 40, when=now),
                   _row(BTC, -1.0, "0.3", "100000", 1.0, 900, slices=3, fallback=True, when=now),
                   _row(ETH, 0.5, "1", "2000", 0.0, 20, when=now),
                   _row(ETH, 9.0, "1", "2000", 0.0, 20, when=now - dt.timedelta(days=40))])  # outside 30 days
    stopped = (await bot.ask(VIEWER, "/execution")).text
    assert stopped.startswith("⚙️ Execution — last 30 days (dry-run)")
    # BTC: notional-weighted slippage (10 k × 2 + 30 k × −1) / 40 k = −0.25 bp; median time to fill of 40 and 900.
    assert ("BTC/USDT: 2 executions, 40,000 USDT — slippage -0.2 bp (worst +2.0), time to fill 470 ms, maker 75.00%, "
            "sliced 1, market fallback 1") in stopped
    assert "ETH/USDT: 1 executions, 2,000 USDT — slippage +0.5 bp" in stopped
    assert "Trading is not running" in stopped
    assert "+9.0" in (await bot.ask(VIEWER, "/execution 60")).text  # the older one is in a 60-day window
    assert "Usage:" in (await bot.ask(VIEWER, "/execution soon")).text
    engine = bot.service.engine
    engine.running = True

    async def market_status() -> dict[str, Any]:
        return {"liquidity": {BTC: MODERATE, ETH: None}, "missing": {ETH: "book"},
                "maintenance": {"phase": "upcoming", "reason": "", "lead_min": 30,
                                "next": {"start_ms": 1746461760000, "end_ms": 1746462660000}},
                "closing": []}

    engine.market_status = market_status
    text = (await bot.ask(VIEWER, "/execution")).text
    assert ("BTC/USDT: liquidity moderate (reduce-only: no new entries): 5,000,000 USDT resting near mid of "
            "13,500,000 required, spread 0.00%, health 0.37") in text
    assert "ETH/USDT: no order book yet" in text
    assert "Next exchange maintenance: 2025-05-05 16:16 – 2025-05-05 16:31 (no new entries from 30 min before) — " \
           "entries are blocked now" in text
    # /risk shows the same market state beside the account rules.
    from tests.bot.test_risk import _book

    state = _book().status()

    async def risk_status() -> dict[str, Any]:
        return state

    engine.risk_status = risk_status
    risk = (await bot.ask(VIEWER, "/risk")).text
    assert "Market now:" in risk and "BTC/USDT: liquidity moderate (reduce-only: no new entries)" in risk
    await bot.ask(TRADER, "/settings language zh_CN")
    zh = (await bot.ask(TRADER, "/execution")).text
    assert "执行质量" in zh and "流动性中度" in zh and "下次交易所维护" in zh


def test_market_decisions_read_in_both_languages() -> None:
    events = [
        RiskAction(action="entries_blocked", reason="x", rule="maintenance", values=UPCOMING),
        RiskAction(action="entries_blocked", reason="x", pair=BTC, rule="liquidity", values=MODERATE),
        RiskAction(action="liquidity_close", reason="x", pair=BTC, rule="liquidity",
                   values={**MODERATE, "tier": "severe", "health": 0.1, "stage": 2, "stages": 3, "quantity": "0.01"}),
        RiskAction(action="entries_resumed", reason="x", rule="maintenance", values={"phase": "ended"}),
    ]
    en = [render(EN, e) for e in events]
    assert en[0] == ("🛡 entries blocked: exchange maintenance 2025-05-05 16:16 UTC – 2025-05-05 16:31 UTC: no new "
                     "entries from 30 min before")
    assert en[1].startswith("🛡 entries blocked (BTC/USDT): liquidity moderate (reduce-only: no new entries)")
    assert en[2].endswith("health 0.10 — part 2 of 3 (0.01)") and "staged close" in en[2]
    assert en[3] == "🛡 entries allowed again: exchange maintenance over: entries allowed again, account re-read"
    zh = [render(ZH, e) for e in events]
    assert "交易所维护" in zh[0] and "维护前 30 分钟起不开新仓" in zh[0]
    assert "第 2/3 批" in zh[2] and "分批平仓" in zh[2]


def test_a_rule_refusal_says_why_in_the_users_language() -> None:
    exc = ServiceError("refused", "no entry on BTC/USDT:USDT: the maintenance risk rule refuses this entry (...)",
                       reason="risk_rule", params={"pair": BTC}, rule="maintenance", values=UPCOMING, pair=BTC)
    assert service_error_text(EN, exc) == (
        "Refused by the Exchange maintenance rule: exchange maintenance 2025-05-05 16:16 UTC – 2025-05-05 16:31 UTC: "
        "no new entries from 30 min before. Nothing was changed.")
    zh = service_error_text(ZH, exc)
    assert zh.startswith("被交易所维护规则拒绝") and "不开新仓" in zh
    plain = ServiceError("refused", "BTC/USDT:USDT already has an open long position of 0.5; exit it first (/forceexit)",
                         reason="position_open", params={"pair": BTC, "side": "long", "contracts": Decimal("0.5")})
    assert service_error_text(EN, plain) == ("Refused: BTC/USDT already has an open long position of 0.5; exit it first "
                                             "(/forceexit). Nothing was changed.")
    assert service_error_text(ZH, plain) == "已拒绝：BTC/USDT 已有 0.5 的多头持仓，请先平仓（/forceexit）。未做任何更改。"


async def test_market_decisions_are_audited(bot) -> None:
    """The real audit log keeps each market-side decision with its rule and numbers; other risk actions (latency,
    flatten) are not this subscriber's."""
    import asyncio

    from sqlalchemy import select

    from trader.events import EventBus
    from trader.execution.market import audit_market_actions
    from trader.persistence.models import AuditEvent

    bus = EventBus()
    audit_market_actions(bus, bot.core.audit, asyncio.get_running_loop())
    bus.publish(RiskAction(action="entry_refused", reason="maintenance: upcoming", pair=BTC, rule="maintenance",
                           values=UPCOMING))
    bus.publish(RiskAction(action="liquidity_close", reason="part 1 of 3", pair=BTC, rule="liquidity",
                           values={**MODERATE, "tier": "severe", "stage": 1, "stages": 3}))
    bus.publish(RiskAction(action="size_halved", reason="latency tier safe"))  # no rule: not this subscriber's

    def rows() -> list[AuditEvent]:
        with transaction(bot.core.sessions) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.source == "engine")))

    for _ in range(200):
        if len(rows()) >= 2:
            break
        await asyncio.sleep(0.01)
    got = sorted(rows(), key=lambda r: r.action)
    assert [(r.action, r.outcome, r.arguments["rule"]) for r in got] == [
        ("entry_refused", "refused", "maintenance"), ("liquidity_close", "ok", "liquidity")]
    assert got[0].arguments["v_start"] == "2025-05-05 16:16 UTC" and got[1].arguments["v_stage"] == 1
