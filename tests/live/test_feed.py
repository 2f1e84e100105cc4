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


def test_minutes_prepared_ahead_and_delivered_later_equal_minutes_pushed() -> None:
    """The store prepares a pair's candle on arrival and delivers it when every pair has the minute: the bars and
    indicator rows Backtrader receives are those of pushing each minute at release, holes and 5m buckets included."""
    from trader.live.feed import live_feed_class
    from trader.strategy.master import MasterStrategy

    df = load_candles(bundled_data_dir(), BTC, "1m").iloc[2000:2400].reset_index(drop=True)
    df = df.drop(index=[101, 102, 250]).reset_index(drop=True)
    cls = live_feed_class(MasterStrategy.indicator_lines)
    params = MasterStrategy.param_values({})

    def feed():  # noqa: ANN202
        return cls(pair=BTC, strategy_cls=MasterStrategy, strategy_params=params, tf_ms=5 * MINUTE, window=50)

    pushed, held = feed(), feed()
    rows = list(df.itertuples(index=False))
    waiting = []
    for i, r in enumerate(rows):
        pushed.push_minute(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume, wake=False)
        p = held.prepare_minute(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume)
        assert held.prepare_minute(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume) is None  # once
        waiting.append(p)
        if i % 3 == 2:  # released a few minutes late, in order
            for q in waiting:
                held.deliver(q, wake=False)
            waiting.clear()
            assert held.last_minute_ms == pushed.last_minute_ms and held.last_close == pushed.last_close
    for q in waiting:
        held.deliver(q, wake=False)

    def drain(f):  # noqa: ANN001, ANN202
        out = []
        while not f._q.empty():
            bar, ind, live = f._q.get_nowait()
            out.append((bar, np.array([ind[k] for k in MasterStrategy.indicator_lines], dtype="float64"), live))
        return out

    a, b = drain(pushed), drain(held)
    assert len(a) == len(b) > 60
    for (bar_a, ind_a, live_a), (bar_b, ind_b, live_b) in zip(a, b, strict=True):
        assert bar_a == bar_b and live_a == live_b
        np.testing.assert_array_equal(ind_a, ind_b)
