"""Issue 15, market side, against the simulator: its maintenance control and schedule feed as the exchange client
reads them, its per-symbol book shape, and liquidity tiers computed from the local order book it feeds."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.exchange.conftest import make_client
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.exchange.streams import DepthStream
from trader.risk.liquidity import LiquidityRules, Tier, assess_book, covered_band
from trader.risk.maintenance import MaintenanceSchedule, Phase, parse_windows

BTC = "BTC/USDT:USDT"


async def test_maintenance_feed_window_and_503(sim):
    client = make_client(sim, backoff=BackoffPolicy(attempts=1, base_s=0.01, cap_s=0.01))
    try:
        assert await client.fetch_maintenance_windows() == []
        now = sim.clock.now_ms()
        sim.schedule_maintenance({"in_s": 600, "duration_s": 1800, "title": "upgrade"})
        rows = await client.fetch_maintenance_windows()
        assert rows == [{"start_ms": now + 600_000, "end_ms": now + 2_400_000, "title": "upgrade"}]
        schedule = MaintenanceSchedule(lead_ms=30 * 60_000)
        schedule.set_announced(parse_windows(rows))
        state = schedule.state(now)
        assert state.phase is Phase.UPCOMING and not state.entries_allowed
        assert "no entries from 30 min before" in state.reason
        assert MaintenanceSchedule(lead_ms=5 * 60_000, announced=parse_windows(rows)).state(now).phase is Phase.NONE
        # During the window every /fapi request is answered as Binance does in maintenance: 503.
        sim.step(600_000)
        with pytest.raises(ExchangeError) as err:
            await client.fetch_time()
        assert err.value.info.http_status == 503
        assert schedule.state(sim.clock.now_ms()).phase is Phase.ACTIVE
        assert await client.fetch_maintenance_windows() == rows  # the announcement stays readable
        sim.step(1_800_000)
        assert await client.fetch_time() > 0
        assert await client.fetch_maintenance_windows() == []
        # An unannounced window is not in the feed; the 503 alone tells.
        sim.schedule_maintenance({"in_s": 0, "duration_s": 60, "announce": False})
        assert await client.fetch_maintenance_windows() == []
        sim.clear_maintenance()
        assert sim.maintenance_info()["window"] is None
    finally:
        await client.close()


async def test_feed_is_absent_against_binance():
    client = ExchangeClient(ClientOptions())
    try:
        assert await client.fetch_maintenance_windows() is None
    finally:
        await client.close()


async def test_liquidity_tier_from_the_local_book(sim):
    """The local book kept from the simulator's diff stream; thinning one symbol's book moves its tier."""
    client = make_client(sim)
    stop = asyncio.Event()
    depth = DepthStream(client, BTC, sim.ws_url.removesuffix("/ws"))
    task = asyncio.create_task(depth.run(stop))
    try:
        await client.ccxt.load_markets()
        volume = await client.fetch_quote_volume_24h(BTC)
        assert volume > 0
        for _ in range(200):
            if depth.book.synced:
                break
            await asyncio.sleep(0.02)
        assert depth.book.synced
        # Required depth equal to what the default book shows within the band: the threshold exactly.
        # The simulator's 50 levels reach ±0.25 %: the requirement is held against that reach.
        reach = covered_band(depth.book, 0.005)
        assert 0 < reach < 0.005
        band_depth = float(depth.book.depth_within(Decimal(repr(reach))))
        rules = LiquidityRules(depth_share_of_volume=min(1.0, band_depth / volume * 0.005 / reach))
        assert assess_book(BTC, depth.book, volume, rules).tier is Tier.NORMAL
        sim.set_book({"symbol": "BTCUSDT", "level_notional": 150_000.0 * 0.3})  # 30 % of the depth: moderate
        sim.step(60_000)
        reading = None
        for _ in range(200):
            await asyncio.sleep(0.02)
            reading = assess_book(BTC, depth.book, volume, rules)
            if reading.tier is Tier.MODERATE:
                break
        assert reading is not None and reading.tier is Tier.MODERATE, reading
        assert not reading.entries_allowed and reading.size_multiplier == 0
        assert "liquidity moderate" in reading.reason
        sim.set_book({"symbol": "BTCUSDT", "spread_bps": 120.0})  # a 1.2 % spread: health ≤ 0.005 / 0.012
        sim.step(60_000)
        for _ in range(200):
            await asyncio.sleep(0.02)
            reading = assess_book(BTC, depth.book, volume, rules)
            if reading.spread and reading.spread > 0.01:
                break
        assert reading.spread is not None and reading.spread > 0.01
        assert reading.tier >= Tier.MODERATE
        # ETH kept the shared shape.
        assert sim.exchange.book("ETHUSDT").asks[0][0] - sim.exchange.book("ETHUSDT").bids[0][0] < \
            sim.exchange.book("ETHUSDT").bids[0][0] * Decimal("0.001")
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
