"""The daily report: scheduled at each user's local time, built from the service, sent in their language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.bot.conftest import ADMIN, TRADER, VIEWER
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.persistence.database import transaction
from trader.persistence.models import Trade


def _closed_trade(sessions, now: dt.datetime, **changes) -> None:
    # Dated by the service's clock: in dry-run the exchange's (the simulator's replay time), as the views count days.
    values = dict(pair="ETH/USDT:USDT", side="short", leverage=10, amount=Decimal("0.5"), amount_open=Decimal(0),
                  stake=Decimal("150"), open_rate=Decimal("3000"), close_rate=Decimal("2980"), status="closed",
                  realized_pnl=Decimal("10"), fees=Decimal("1"), funding=Decimal("-0.5"), exit_reason="roi",
                  open_date=now - dt.timedelta(minutes=30), close_date=now - dt.timedelta(seconds=1))  # "today" in every zone, bar a 1 s window
    with transaction(sessions) as session:
        session.add(Trade(**{**values, **changes}))


async def test_the_daily_job_sends_the_report_at_the_users_time(bot) -> None:
    _closed_trade(bot.core.sessions, await bot.service.now())
    await bot.service.client.create_order(OrderRequest("BTC/USDT:USDT", "buy", "market", client_order_id(1, "entry"),
                                                       amount=Decimal("0.01")))
    await bot.ask(TRADER, "/settings report 21:15 America/New_York")
    await bot.ask(VIEWER, "/settings language zh_CN")
    (job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{TRADER}")
    local = job.next_t.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (21, 15) and job.next_t - dt.datetime.now(dt.timezone.utc) \
        <= dt.timedelta(days=1)
    # Every configured user has a job; the admin's is at the config default (08:00 UTC).
    (admin_job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{ADMIN}")
    assert admin_job.next_t.astimezone(dt.timezone.utc).strftime("%H:%M") == "08:00"

    await job.run(bot.app)
    report = await bot.tg.wait_for_sent(TRADER, lambda m: m.text.startswith("🗓"))
    lines = report.text.split("\n")
    assert lines[0].startswith("🗓 Daily report,") and lines[0].endswith("(America/New_York)")
    assert lines[1].startswith("Equity ") and "USDT (wallet " in lines[1]
    assert "Today: +8.50 USDT, 1 trades, 1 won" in lines
    assert "This week: +8.50 USDT, 1 trades, 1 won" in lines
    assert "Fees today: 1.00 USDT, funding today: -0.50 USDT" in lines
    assert "Open positions (1):" in lines and any(line.startswith("• BTC/USDT long 0.01 @") for line in lines)
    assert any("liquidation" in line for line in lines)
    assert any(line.startswith("Health: ") and "latency p99" in line and "uptime" in line for line in lines)

    (zh_job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{VIEWER}")
    await zh_job.run(bot.app)
    zh = await bot.tg.wait_for_sent(VIEWER, lambda m: m.text.startswith("🗓"))
    assert zh.text.startswith("🗓 每日报告") and "今日：+8.50 USDT，1 笔交易，1 笔盈利" in zh.text


async def test_trade_views_are_formatted(bot) -> None:
    _closed_trade(bot.core.sessions, await bot.service.now())
    pnl = (await bot.ask(VIEWER, "/pnl")).text
    assert pnl.split("\n")[1].endswith(": +8.50 USDT, 1 trades, 1 won") and "Total: +8.50 USDT over 1 trades" in pnl
    trades = (await bot.ask(VIEWER, "/trades 3")).text
    assert trades.startswith("Latest 1 trades:") and "ETH/USDT short closed" in trades and "net +8.50" in trades
    performance = (await bot.ask(VIEWER, "/performance")).text
    assert "ETH/USDT: 1 trades, 100.00% won, net +8.50 (fees 1.00, funding -0.50)" in performance
