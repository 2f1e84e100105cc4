"""`bsmart reconcile [--fix]` against a simulator: a trade the exchange closed while nothing was watching (the
process died after the entry, a flatten closed it) is found, and --fix closes it at the exchange's own prices."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from bot.commands.reconcile import _reconcile
from tests.exchange.conftest import make_client
from trader.bootstrap import open_core
from trader.config.loader import load_settings
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.live.ledger import Ledger, OrderRow
from trader.persistence.models import Trade
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

BTC = "BTC/USDT:USDT"


async def test_reconcile_finds_and_fixes_a_trade_the_exchange_closed(sim, write_config, tmp_path, capsys) -> None:
    settings = load_settings(write_config({
        "exchange": {"api_url": sim.rest_url, "ws_url": sim.ws_url.removesuffix("/ws"), "key": DEFAULT_API_KEY,
                     "secret": DEFAULT_API_SECRET},
        "pair_whitelist": ["BTC/USDT:USDT", "ETH/USDT:USDT"], "metrics": {"enabled": False},
        "user_data_dir": str(tmp_path / "ud")}), environ={})
    core = open_core(settings, file_logging=False, console_logging=False)
    ledger = Ledger(core.sessions)
    entry_cid = ""

    def first(tid: int) -> OrderRow:
        nonlocal entry_cid
        entry_cid = client_order_id(tid, "entry")
        return OrderRow(tid, entry_cid, BTC, "market", "buy", "entry", Decimal("0.01"), None, None, False, False)

    trade_id = ledger.new_trade(BTC, "long", 25, first_order=first)
    core.close()
    client = make_client(sim)
    await client.initialize(["BTC/USDT:USDT"], 25)
    # The entry fills (its fill never reaches the ledger), then someone else's reduce-only close flattens it.
    await client.create_order(OrderRequest(BTC, "buy", "market", entry_cid, amount=Decimal("0.01")))
    exit_state = await client.create_order(OrderRequest(BTC, "sell", "market", "manual-close-1",
                                                        amount=Decimal("0.01"), reduce_only=True))
    await client.close()

    assert await _reconcile(settings, fix=False) == 3
    out = capsys.readouterr().out
    assert f"trade #{trade_id} is open in the ledger" in out and "the exchange is flat" in out

    assert await _reconcile(settings, fix=True) == 0, capsys.readouterr().out
    assert "OK: the ledger matches the exchange" in capsys.readouterr().out
    core = open_core(settings, file_logging=False, console_logging=False)
    with core.sessions() as s:
        trade = s.scalar(select(Trade).where(Trade.id == trade_id))
        assert trade.status == "closed" and trade.amount == Decimal("0.01") and trade.amount_open == 0
        assert trade.close_rate == exit_state.average and trade.close_rate > 0
        assert trade.exit_reason == "external"
    core.close()
