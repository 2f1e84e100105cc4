"""Flatten against the simulator: everything closes, foreign positions too, big ones in slices, nothing twice."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from tests.exchange.conftest import make_client
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.service.flatten import flatten_account
from trader.sim.client import point_at
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]


@pytest.fixture
async def sim():
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS,
                                         balance=Decimal("10000000"))) as server:
        yield server


async def _open(client, pair: str, side: str, amount: str, tid: int) -> None:
    await client.create_order(OrderRequest(pair, side, "market", client_order_id(tid, "entry"), amount=Decimal(amount)))


async def test_flatten_closes_every_position_and_cancels_every_order(sim) -> None:
    client = make_client(sim)
    try:
        await client.initialize(PAIRS, 25)
        await _open(client, "BTC/USDT:USDT", "buy", "0.01", 1)
        await _open(client, "ETH/USDT:USDT", "sell", "0.5", 2)
        btc = (await client.fetch_positions(["BTC/USDT:USDT"]))[0]
        await client.create_order(OrderRequest(
            "BTC/USDT:USDT", "sell", "stop_market", client_order_id(1, "stop"), amount=Decimal("0.01"),
            trigger_price=client.price_to_precision("BTC/USDT:USDT", btc.entry_price * Decimal("0.97")),
            reduce_only=True))
        await client.create_order(OrderRequest(
            "SOL/USDT:USDT", "buy", "limit", client_order_id(3, "entry"), amount=Decimal("1"),
            price=Decimal("100")))  # a resting entry far below the market
        # A position opened by hand on the same account, with a foreign client id.
        other = point_at(ccxt_async.binanceusdm({"apiKey": DEFAULT_API_KEY, "secret": DEFAULT_API_SECRET,
                                                 "enableRateLimit": False,
                                                 "options": {"fetchCurrencies": False}}), sim.rest_url)
        await other.create_order("SOL/USDT:USDT", "market", "buy", 2)
        await other.close()

        report = await flatten_account(client, run="t1")
        assert report.flat and not report.errors, report
        assert report.cancelled_orders == 2
        assert {f.pair: (f.side, f.amount) for f in report.closed} == {
            "BTC/USDT:USDT": ("long", Decimal("0.01")),
            "ETH/USDT:USDT": ("short", Decimal("0.5")),
            "SOL/USDT:USDT": ("long", Decimal("2")),
        }
        assert all(f.average_price and f.average_price > 0 for f in report.closed)
        assert await client.fetch_positions() == []
        assert await client.fetch_open_orders(None) == []
        # Every close was reduce-only: the account cannot have been flipped.
        closes = [o for o in sim.exchange.orders.values() if "flat" in o.client_id]
        assert closes and all(o.reduce_only for o in closes)
        again = await flatten_account(client, run="t2")  # nothing left: nothing sent
        assert again.flat and again.closed == [] and again.cancelled_orders == 0
    finally:
        await client.close()


async def test_positions_above_the_market_maximum_are_closed_in_slices(sim) -> None:
    client = make_client(sim)
    try:
        await client.initialize(["BTC/USDT:USDT"], 25)
        cap = Decimal(str(client.market("BTC/USDT:USDT")["limits"]["market"]["max"]))
        await _open(client, "BTC/USDT:USDT", "sell", str(cap), 1)
        await _open(client, "BTC/USDT:USDT", "sell", "30", 2)
        report = await flatten_account(client, run="big")
        assert report.flat, report
        (fill,) = report.closed
        assert fill.amount == cap + 30 and len(fill.client_order_ids) == 2
    finally:
        await client.close()


async def test_flatten_reports_leftovers_when_the_exchange_refuses(sim) -> None:
    client = make_client(sim)
    try:
        await client.initialize(["ETH/USDT:USDT"], 25)
        await _open(client, "ETH/USDT:USDT", "buy", "0.5", 1)
        sim.set_faults({"error_share": 1.0, "error_kinds": ["-1001"]})
        report = await flatten_account(client, run="down")
        sim.set_faults({"error_share": 0.0})
        assert not report.flat and not report.verified and report.errors
        assert report.closed == []
        # With the exchange back, a second flatten finishes the job.
        assert (await flatten_account(client, run="up")).flat
    finally:
        await client.close()
