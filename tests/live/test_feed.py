"""Higher timeframes from 1m candles: the live aggregation equals the backtest's resampling, holes included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.live.conftest import BTC, MINUTE, OneShot, make_engine_for, step_minutes
from trader.data.store import bundled_data_dir, load_candles, resample
from trader.live.feed import BarAggregator


def test_aggregator_matches_store_resample_with_holes() -> None:
    df = load_candles(bundled_data_dir(), BTC, "1m").iloc[1000:1400].reset_index(drop=True)
    df = df.drop(index=[37, 38, 203]).reset_index(drop=True)  # holes inside two 5m buckets and one 15m bucket
    for tf in ("5m", "15m"):
        want = resample(df, "1m", tf)
        agg = BarAggregator(int(tf[:-1]) * MINUTE)
        got = [b for r in df.itertuples(index=False)
               if (b := agg.add(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume)) is not None]
        frame = pd.DataFrame([(b.ts_ms, b.open, b.high, b.low, b.close, b.volume) for b in got],
                             columns=["timestamp", "open", "high", "low", "close", "volume"])
        assert frame["timestamp"].tolist() == want["timestamp"].tolist()
        np.testing.assert_allclose(frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                                   want[["open", "high", "low", "close", "volume"]].to_numpy())


def test_five_minute_engine_bars_are_epoch_aligned_and_equal_to_the_data(sim) -> None:
    engine, _ = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62}, timeframe="5m", history_bars=12)
    engine.start()
    seen = []
    engine.store.on_bar = lambda pair, bar: seen.append(bar)
    try:
        step_minutes(sim, engine, 11)
        assert len(seen) >= 2 and engine.status().bars[BTC] == 12 + len(seen)
        first = seen[0].ts_ms
        want = resample(load_candles(bundled_data_dir(), BTC, "1m", start_ms=first, end_ms=first + 15 * MINUTE),
                        "1m", "5m")
        for bar, row in zip(seen, want.itertuples(index=False), strict=False):
            assert bar.ts_ms % (5 * MINUTE) == 0 and bar.ts_ms == row.timestamp
            assert (bar.open, bar.high, bar.low, bar.close) == (row.open, row.high, row.low, row.close)
    finally:
        engine.stop()
