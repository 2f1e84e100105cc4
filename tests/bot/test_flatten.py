"""/flatten: confirm, the service closes everything on the simulator, the question becomes the report."""

from __future__ import annotations

import re
from decimal import Decimal

from tests.bot.conftest import ADMIN, TRADER
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id


async def test_flatten_reports_what_was_closed_at_which_price(bot) -> None:
    client = bot.service.client
    opened = [("BTC/USDT:USDT", "buy", "0.01"), ("ETH/USDT:USDT", "sell", "0.5"), ("SOL/USDT:USDT", "buy", "3")]
    for number, (pair, side, amount) in enumerate(opened, start=1):
        await client.create_order(OrderRequest(pair, side, "market", client_order_id(number, "entry"),
                                               amount=Decimal(amount)))
    await client.create_order(OrderRequest("BTC/USDT:USDT", "buy", "limit", client_order_id(9, "entry"),
                                           amount=Decimal("0.2"), price=Decimal("1000")))  # far below the market
    question = await bot.ask(TRADER, "/flatten")
    assert question.text.startswith("Close ALL 3 open positions (BTC/USDT long, ETH/USDT short, SOL/USDT long)")
    report = await bot.press(TRADER, question)
    lines = report.text.split("\n")
    assert lines[0] == "🧯 Flatten done: the account is flat."
    assert "Orders cancelled: 1" in lines and "Closed (3):" in lines
    closes = {m["pair"]: m for m in (re.match(r"• (?P<pair>\S+) (?P<side>long|short) (?P<amount>\S+) @ "
                                               r"(?P<price>[\d,.]+), est. PnL (?P<pnl>\S+)", line) for line in lines)
              if m}
    assert {p: (c["side"], c["amount"]) for p, c in closes.items()} == {
        "BTC/USDT": ("long", "0.01"), "ETH/USDT": ("short", "0.5"), "SOL/USDT": ("long", "3")}
    assert all(Decimal(c["price"].replace(",", "")) > 0 for c in closes.values())
    assert await client.fetch_positions() == [] and await client.fetch_open_orders(None) == []
    assert bot.service.paused  # entries stop first, and stay stopped
    (record,) = [a for a in bot.audit(10) if a.action == "flatten"]
    assert (record.outcome, record.actor.user_id) == ("ok", TRADER)
    again = await bot.press(ADMIN, await bot.ask(ADMIN, "/flatten"))
    assert "There was nothing open to close." in again.text and again.text.startswith("🧯 Flatten done")
