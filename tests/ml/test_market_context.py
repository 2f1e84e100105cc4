"""Live market context for the models' features, against the simulator: funding settlements, the long/short ratio
(the simulator has none stored for the shipped data: absent, not zero) and an order-book snapshot are read, and the
features built at a decision bar see funding and the book as of that bar only."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.live.conftest import BTC, client_factory
from trader.analysis.analyzer import AnalyzerConfig, analyze
from trader.analysis.orderflow import load_book_snapshots
from trader.data.store import bundled_data_dir, load_candles
from trader.ml.context import MarketContext
from trader.ml.features import build_features
from trader.ml.live import LivePredictions
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread

START = 1747612800000  # 2025-05-19 00:00 UTC, a funding settlement


def test_context_from_the_simulator_reaches_the_features(tmp_path) -> None:
    ctx = MarketContext(record_dir=tmp_path)
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC], start_ms=START)) as sim:
        async def go() -> None:
            client = client_factory(sim)()
            try:
                await ctx.poll(client, [BTC])
            finally:
                await client.close()

        asyncio.run(go())
    asyncio.run(ctx.flush())
    (recorded,) = load_book_snapshots(tmp_path, BTC)  # recorded for later backtests, as it was seen
    assert recorded.ts_ms == START and np.array_equal(recorded.bids, ctx.book(BTC)[0].bids)
    funding = ctx.funding(BTC)
    assert funding is not None and len(funding) and int(funding["timestamp"].max()) <= START
    assert ctx.ratio(BTC) is None  # nothing stored for the simulator to serve: absent
    (snap,) = ctx.book(BTC)
    assert snap.ts_ms == START and len(snap.bids) and len(snap.asks) and snap.bids[0, 0] < snap.asks[0, 0]
    assert ctx.book(BTC, START - 1) == []  # a snapshot is not seen before it was taken

    live = LivePredictions(None, None, context=ctx)
    funding_at, ratio_at, book_at = live._context(BTC, START)
    assert len(funding_at) == len(funding) and ratio_at is None and len(book_at) == 1
    df = load_candles(bundled_data_dir(), BTC, "1m", start_ms=START - 3 * 86_400_000, end_ms=START)
    fs = build_features(analyze(BTC, df, funding=funding_at, ratio=ratio_at, book=book_at, base_timeframe="1m",
                                config=AnalyzerConfig(), now_ms=START))
    assert int(fs.close_ms[-1]) == START
    last = fs.X.iloc[-1]
    assert last["has_funding"] == 1.0 and last["has_book"] == 1.0 and last["has_ratio"] == 0.0
    assert np.isfinite(last["ob_imbalance"]) and np.isnan(last["ls_z"])
    assert (fs.X["has_book"].iloc[:-1] == 0.0).all()  # only the bar the snapshot was taken at
