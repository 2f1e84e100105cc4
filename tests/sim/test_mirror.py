"""The market mirror: a simulator trading the prices of another exchange (here: another simulator standing in for
Binance), minute by minute, with nothing but closed candles crossing over."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.exchange.conftest import make_client
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.sim.config import SimConfig
from trader.sim.mirror import MarketMirror
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
MINUTE = 60_000


async def test_mirror_follows_the_upstream_minute_by_minute() -> None:
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as upstream_sim:
        upstream = make_client(upstream_sim)
        mirror = MarketMirror(upstream, PAIRS)
        mirrored = await mirror.start(SimConfig(port=0))
        local = make_client(mirrored)
        try:
            start = mirrored.clock.now_ms()
            assert start == (upstream_sim.clock.now_ms() // MINUTE) * MINUTE  # one candle behind, at most
            for _ in range(3):
                upstream_sim.step(MINUTE)
                await asyncio.sleep(0.3)
            for _ in range(100):
                if mirrored.clock.now_ms() >= start + 3 * MINUTE:
                    break
                await asyncio.sleep(0.05)
            assert mirrored.clock.now_ms() == start + 3 * MINUTE
            for pair in PAIRS:
                theirs = await upstream.fetch_ohlcv(pair, "1m", start - 5 * MINUTE, 8)
                ours = await local.fetch_ohlcv(pair, "1m", start - 5 * MINUTE, 8)
                closed = [r for r in theirs if r[0] < start + 3 * MINUTE]
                assert [r[:5] for r in ours[: len(closed)]] == [r[:5] for r in closed]
            # Orders trade the mirrored price: the last closed minute's close, within the synthetic spread.
            await local.initialize(PAIRS, 25)
            fill = await local.create_order(OrderRequest("ETH/USDT:USDT", "buy", "market", client_order_id(1, "entry"),
                                                         amount=Decimal("0.1")))
            last_close = Decimal(str(closed[-1][4]))
            assert abs(fill.average - last_close) / last_close < Decimal("0.002")
        finally:
            await local.close()
            await mirror.stop()
            await upstream.close()
