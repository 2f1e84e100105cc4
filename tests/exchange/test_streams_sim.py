"""Streams against the simulator's websocket: every closed candle exactly once, through drops; the local book
stays equal to the exchange's; account events arrive and a drop triggers reconciliation."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.exchange.conftest import PAIRS, make_client
from trader.data.store import bundled_data_dir, load_candles
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.exchange.streams import AccountStream, CandleStream, DepthStream, MarkPriceStream, StreamOptions

BTC = PAIRS[0]
MINUTE = 60_000


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_every_closed_candle_once_in_order_across_drops(sim) -> None:
    client = make_client(sim)
    got = []
    start = (sim.clock.now_ms() // MINUTE) * MINUTE
    stream = CandleStream(client, BTC, got.append, last_closed_ms=start - MINUTE,
                          options=StreamOptions(heartbeat_s=1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        for _ in range(3):  # minute by minute while connected
            sim.step(MINUTE)
            await asyncio.sleep(0.15)
        sim.step(4 * MINUTE)  # a jump: the socket only sees the latest candle
        await asyncio.sleep(0.2)
        sim.hub.drop_all()  # the connection dies ...
        sim.step(5 * MINUTE)  # ... and the market moves on meanwhile
        await _until(lambda: len(got) >= 12)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    stamps = [c.timestamp for c in got]
    assert stamps == list(range(start, start + len(got) * MINUTE, MINUTE))  # no hole, no duplicate
    real = load_candles(bundled_data_dir(), BTC, "1m", start_ms=start, end_ms=start + len(got) * MINUTE)
    assert [c.close for c in got] == pytest.approx(real["close"].tolist())
    assert stream.resyncs >= 1  # (ccxt may reconnect without raising, so reconnects can stay 0)


async def test_local_book_matches_the_exchange_snapshot(sim) -> None:
    client = make_client(sim)
    updates = []
    depth = DepthStream(client, BTC, sim.ws_url.removesuffix("/ws"), on_update=lambda book: updates.append(1))
    stop = asyncio.Event()
    task = asyncio.create_task(depth.run(stop))
    try:
        await _until(lambda: depth.book.synced)
        for _ in range(5):
            sim.step(MINUTE)
            await asyncio.sleep(0.1)
        await _until(lambda: len(updates) >= 3)
        await asyncio.sleep(0.2)
        snapshot = await client.fetch_order_book(BTC, 1000)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    bids, asks = depth.book.top(5)
    assert [(str(p), str(q)) for p, q in bids] == [(str(Decimal(p)), str(Decimal(q))) for p, q in snapshot["bids"][:5]]
    assert [(str(p), str(q)) for p, q in asks] == [(str(Decimal(p)), str(Decimal(q))) for p, q in snapshot["asks"][:5]]
    assert depth.book.spread() > 0


async def test_mark_price_stream_measures_delay(sim) -> None:
    client = make_client(sim)
    marks = []
    stream = MarkPriceStream(client, BTC, lambda pair, mark, info: marks.append(mark))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        for _ in range(30):
            sim.step(1000)
            await asyncio.sleep(0.05)
            if len(marks) >= 2:
                break
        await _until(lambda: len(marks) >= 2)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert all(m > 0 for m in marks)
    assert client.latency.ws_stats("btcusdt@markPrice").count >= 2


async def test_account_stream_reports_fills_and_reconciles_after_a_drop(sim) -> None:
    client = make_client(sim)
    await client.initialize(PAIRS, 25)
    seen, reconciled = [], []
    stream = AccountStream(client, on_orders=seen.extend, on_reconnect=lambda: reconciled.append(1),
                           options=StreamOptions(heartbeat_s=5.0))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        await asyncio.sleep(0.3)  # listenKey + subscription
        order = OrderRequest(BTC, "buy", "market", client_order_id(1, "entry"), amount=Decimal("0.002"))
        await client.create_order(order)
        await _until(lambda: any(o.client_order_id == order.client_order_id and o.status == "closed" for o in seen))
        sim.hub.drop_all()
        await _until(lambda: reconciled)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
