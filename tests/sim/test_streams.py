"""Websocket streams through ccxt.pro (and a raw client for events ccxt does not surface), over real sockets,
with the simulator on the test's own event loop."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

import aiohttp
import ccxt
import pytest

from tests.sim.conftest import BTC, START, sim_config
from trader.sim import SimulatorServer
from trader.sim.client import make_async_client, make_pro_client


async def _pro(sim: SimulatorServer):
    ex = make_pro_client(sim.rest_url, sim.ws_url)
    await ex.load_markets()
    return ex


async def _settle() -> None:
    await asyncio.sleep(0.25)  # two ticks of the pusher


async def _until(cond, timeout: float = 5.0) -> None:
    """Wait for a server-side condition (a subscription in place) instead of guessing a delay."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


def _subscribed(sim: SimulatorServer, part: str) -> bool:
    return any(part in s for c in sim.hub.conns for s in c.streams)


def _user_connected(sim: SimulatorServer, n: int = 1) -> bool:
    return sum(1 for c in sim.hub.conns if c.listen_key) >= n


async def test_watch_ohlcv_and_mark_price():
    async with SimulatorServer(sim_config()) as sim:
        ex = await _pro(sim)
        try:
            first = await asyncio.wait_for(ex.watch_ohlcv(BTC, "1m"), 5)
            assert first[-1][0] == START
            nxt = asyncio.ensure_future(ex.watch_ohlcv(BTC, "1m"))
            await asyncio.sleep(0.05)
            sim.step(60_000)  # pushes the closed bar (x=true), then the one that opened
            await asyncio.wait_for(nxt, 5)
            await _settle()
            bars = list(ex.ohlcvs[BTC]["1m"])
            rest = await ex.fetch_ohlcv(BTC, "1m", since=START, limit=2)
            # The closed bar pushed with x=true equals the REST candle; the new one has opened.
            by_t = {b[0]: b for b in bars}
            assert by_t[START][1:5] == rest[0][1:5]
            assert bars[-1][0] == START + 60_000
            ticker = await asyncio.wait_for(ex.watch_ticker(BTC), 5)
            assert ticker["last"] == (await ex.fetch_ticker(BTC))["last"]
            mp = await asyncio.wait_for(ex.watch_mark_price(BTC), 5)
            fr = await ex.fetch_funding_rate(BTC)
            assert mp["markPrice"] == fr["markPrice"]
        finally:
            await ex.close()


async def test_watch_order_book_keeps_a_consistent_local_book():
    async with SimulatorServer(sim_config()) as sim:
        ex = await _pro(sim)
        try:
            task = asyncio.ensure_future(ex.watch_order_book(BTC))
            await _until(lambda: _subscribed(sim, "@depth"))
            await _settle()
            for _ in range(3):
                sim.step(20_000)  # a new price → a diff event chained by pu
                await asyncio.sleep(0.05)
            await asyncio.wait_for(task, 5)
            nxt = asyncio.ensure_future(ex.watch_order_book(BTC))
            await asyncio.sleep(0.05)
            sim.step(20_000)
            book = await asyncio.wait_for(nxt, 5)
            rest = await ex.fetch_order_book(BTC, 50)
            assert book["bids"][:50] == rest["bids"] and book["asks"][:50] == rest["asks"]
            assert book["nonce"] == rest["nonce"]
        finally:
            await ex.close()


async def test_user_stream_orders_positions_balance():
    async with SimulatorServer(sim_config()) as sim:
        ex = await _pro(sim)
        try:
            sim.set_price("BTCUSDT", 100_000)
            sim.step(1000)
            orders_task = asyncio.ensure_future(ex.watch_orders(BTC))
            await _until(lambda: _user_connected(sim))
            positions_task = asyncio.ensure_future(ex.watch_positions([BTC]))
            balance_task = asyncio.ensure_future(ex.watch_balance())
            await _settle()
            await ex.create_order(BTC, "market", "buy", 0.01)
            orders = await asyncio.wait_for(orders_task, 5)
            assert orders[-1]["symbol"] == BTC and orders[-1]["side"] == "buy"
            await _settle()
            orders = await asyncio.wait_for(ex.watch_orders(BTC), 5) if orders[-1]["status"] != "closed" else orders
            assert orders[-1]["status"] == "closed" and orders[-1]["filled"] == 0.01
            positions = await asyncio.wait_for(positions_task, 5)
            assert positions[-1]["contracts"] == 0.01 and positions[-1]["side"] == "long"
            balance = await asyncio.wait_for(balance_task, 5)
            assert balance["USDT"]["total"] == pytest.approx(10_000 - 100_001 * 0.01 * 0.0005)
            # Conditional orders arrive as ALGO_UPDATE and are parsed as orders too.
            nxt = asyncio.ensure_future(ex.watch_orders(BTC))
            await asyncio.sleep(0.05)
            sl = await ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 99_000,
                                                                           "reduceOnly": True})
            got = await asyncio.wait_for(nxt, 5)
            assert any(o["id"] == sl["id"] for o in got)
        finally:
            await ex.close()


async def _listen(session: aiohttp.ClientSession, sim: SimulatorServer, ex) -> aiohttp.ClientWebSocketResponse:
    key = (await ex.fapiPrivatePostListenKey())["listenKey"]
    ws = await session.ws_connect(f"ws://127.0.0.1:{sim.port}/private/ws?listenKey={key}")
    await _until(lambda: _user_connected(sim))
    return ws


async def _next_event(ws: aiohttp.ClientWebSocketResponse, kind: str, status: str | None = None) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data.get("e") == kind and (status is None or data["o"]["X"] == status):
            return data


async def test_raw_user_stream_funding_and_margin_call():
    async with SimulatorServer(sim_config(balance=D("100"))) as sim:
        ex = make_async_client(sim.rest_url)
        try:
            await ex.load_markets()
            await ex.set_leverage(25, BTC)
            sim.set_price("BTCUSDT", 100_000)
            sim.step(1000)
            async with aiohttp.ClientSession() as session:
                ws = await _listen(session, sim, ex)
                await ex.create_order(BTC, "market", "buy", 0.02)
                trade = await _next_event(ws, "ORDER_TRADE_UPDATE", "FILLED")
                assert trade["o"]["X"] == "FILLED" and trade["o"]["n"] == "1.00001000"  # 100,001 × 0.02 × 0.05 %
                acct = await _next_event(ws, "ACCOUNT_UPDATE")
                assert acct["a"]["m"] == "ORDER" and acct["a"]["P"][0]["pa"] == "0.02"
                sim.step(8 * 3_600_000)  # settlement at 08:00
                fund = await _next_event(ws, "ACCOUNT_UPDATE")
                assert fund["a"]["m"] == "FUNDING_FEE" and fund["E"] == START - 60_000 + 8 * 3_600_000
                # At 95,510: margin balance ≈ 98.99 − 0.02 × 4,491 = 9.17, maintenance 0.02 × 95,510 × 0.4 % = 7.64
                # → margin ratio ≈ 83 % ≥ 80 %; the liquidation price (~95,432) is not reached yet.
                sim.set_price("BTCUSDT", 95_510)
                sim.step(1000)
                call = await _next_event(ws, "MARGIN_CALL")
                assert call["p"][0]["s"] == "BTCUSDT" and D(call["p"][0]["mm"]) > 0
                sim.set_price("BTCUSDT", 90_000)
                sim.step(1000)
                liq = await _next_event(ws, "ORDER_TRADE_UPDATE", "FILLED")
                assert liq["o"]["c"].startswith("autoclose-") and liq["o"]["x"] == "CALCULATED"
                await ws.close()
        finally:
            await ex.close()


async def test_dropped_connection_and_reconnect():
    async with SimulatorServer(sim_config()) as sim:
        ex = await _pro(sim)
        try:
            await asyncio.wait_for(ex.watch_ohlcv(BTC, "1m"), 5)
            pending = asyncio.ensure_future(ex.watch_ohlcv(BTC, "1m"))
            await asyncio.sleep(0.05)
            assert sim.hub.drop_all() >= 1
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 5)
            sim.step(60_000)
            again = await asyncio.wait_for(ex.watch_ohlcv(BTC, "1m"), 5)
            assert again[-1][0] == START + 60_000
        finally:
            await ex.close()


async def test_combined_stream_and_category_routing():
    async with SimulatorServer(sim_config()) as sim, aiohttp.ClientSession() as session:
        url = f"ws://127.0.0.1:{sim.port}/market/stream?streams=btcusdt@markPrice@1s/btcusdt@depth@100ms"
        ws = await session.ws_connect(url)
        msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        # depth belongs to /public: on a /market connection only markPrice flows.
        assert msg["stream"] == "btcusdt@markPrice@1s" and msg["data"]["e"] == "markPriceUpdate"
        sim.step(2000)
        msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert msg["stream"] == "btcusdt@markPrice@1s"
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
        while True:
            reply = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if reply.get("id") == 7:
                break
        assert reply["result"] == ["btcusdt@depth@100ms", "btcusdt@markPrice@1s"]
        await ws.close()


async def test_periodic_drops_and_listen_key_expiry():
    async with SimulatorServer(sim_config()) as sim, aiohttp.ClientSession() as session:
        ex = make_async_client(sim.rest_url)
        try:
            user = await _listen(session, sim, ex)
            key = next(c.listen_key for c in sim.hub.conns if c.listen_key)
            sim.listen_keys[key] = 0.0  # expired an hour ago, as if never kept alive
            expired = await _next_event(user, "listenKeyExpired")
            assert expired["listenKey"] == key
            assert (await asyncio.wait_for(user.receive(), 5)).type in (aiohttp.WSMsgType.CLOSE,
                                                                        aiohttp.WSMsgType.CLOSED)
            with pytest.raises(ccxt.AuthenticationError, match="-1125"):
                await ex.fapiPrivatePutListenKey({"listenKey": key})
            market = await session.ws_connect(f"ws://127.0.0.1:{sim.port}/market/ws/btcusdt@markPrice@1s")
            sim.set_faults({"ws_drop_every_s": 0.3})
            kinds = set()
            while True:
                msg = await asyncio.wait_for(market.receive(), 5)
                kinds.add(msg.type)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
            assert aiohttp.WSMsgType.TEXT in kinds and msg.type in (aiohttp.WSMsgType.CLOSE,
                                                                     aiohttp.WSMsgType.CLOSED)
        finally:
            await ex.close()
