"""The one-bar-at-a-time building blocks equal the batch functions bit for bit on the shipped data, warm-up
included (the live feed's incremental path relies on it)."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from trader.analysis import incremental as inc
from trader.analysis.analyzer import AnalyzerConfig, analyze_timeframe
from trader.analysis.features import rolling_percentile
from trader.analysis.indicators import supertrend
from trader.strategy.base import Candles
from trader.strategy.multitf import to_tf

from .conftest import real_bars


def _stepped(stream, *inputs):
    return np.array([stream.update(*x) for x in zip(*(a.tolist() for a in inputs), strict=True)], dtype=float)


@pytest.mark.parametrize("pair", ["BTC/USDT:USDT", "SOL/USDT:USDT"])
def test_streams_equal_talib_from_the_first_bar(pair) -> None:
    b = real_bars(pair, "15m")
    h, lo, c, v = b.high, b.low, b.close, b.volume
    cases = [
        (inc.sma(20), (c,), talib.SMA(c, 20)),
        (inc.stddev(96), (np.log1p(v),), talib.STDDEV(np.log1p(v), 96, 1.0)),
        (inc.ema(50), (c,), talib.EMA(c, 50)),
        (inc.rsi(14), (c,), talib.RSI(c, 14)),
        (inc.rolling_max(20), (h,), talib.MAX(h, 20)),
        (inc.rolling_min(48), (lo,), talib.MIN(lo, 48)),
        (inc.atr(14), (h, lo, c), talib.ATR(h, lo, c, 14)),
        (inc.adx(14), (h, lo, c), talib.ADX(h, lo, c, 14)),
    ]
    for stream, inputs, want in cases:
        np.testing.assert_array_equal(_stepped(stream, *inputs), want)
    bb = inc.bbands(20, 2.0)
    rows = np.array([bb.update(x) for x in c.tolist()], dtype=float)
    for k, want in enumerate(talib.BBANDS(c, 20, 2.0, 2.0, 0)):
        np.testing.assert_array_equal(rows[:, k], want)


@pytest.mark.parametrize("tf", ["5m", "15m", "1h", "4h"])
def test_aggregator_equals_to_tf_with_holes(tf) -> None:
    b = real_bars("ETH/USDT:USDT", "1m")
    keep = np.ones(len(b), dtype=bool)
    keep[[100, 101, 7_000, 20_000]] = False
    keep[30_000:30_400] = False
    c = Candles(b.ts_ms[keep], b.open[keep], b.high[keep], b.low[keep], b.close[keep], b.volume[keep])
    want = to_tf(c, 60_000, tf)
    agg = inc.TfAggregator(want.tf_ms, 60_000)
    got = [x for x in (agg.add(*row) for row in zip(c.ts_ms.tolist(), c.open.tolist(), c.high.tolist(),
                                                      c.low.tolist(), c.close.tolist(), c.volume.tolist(),
                                                      strict=True)) if x is not None]
    assert len(got) == len(want) < len(c.close) * 60_000 // want.tf_ms  # the holes dropped whole buckets
    np.testing.assert_array_equal([g.ts_ms for g in got], want.ts_ms)
    for k in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal([getattr(g, k) for g in got], getattr(want, k), err_msg=k)


def test_rolling_rank_equals_rolling_percentile_with_nans() -> None:
    x = real_bars("BTC/USDT:USDT", "5m").close.copy()
    x[[5, 600, 601, 2_000]] = np.nan
    r = inc.RollingRank(144)
    np.testing.assert_array_equal([r.update(v) for v in x.tolist()], rolling_percentile(x, 144))


def test_supertrend_step_and_regime_stream_equal_the_analyzer() -> None:
    b = real_bars("SOL/USDT:USDT", "1h")
    st = inc.SuperTrendStep(10, 3.0)
    rows = np.array([st.update(*x) for x in zip(b.high.tolist(), b.low.tolist(), b.close.tolist(), strict=True)])
    line, direction = supertrend(b.high, b.low, b.close, 10, 3.0)
    np.testing.assert_array_equal(rows[:, 0], line)
    np.testing.assert_array_equal(rows[:, 1], direction)
    for window in (144, 500):
        cfg = AnalyzerConfig(timeframes=("1h",), grid_timeframe="1h", pattern_timeframes=(), template_timeframes=())
        cfg = AnalyzerConfig(**{**cfg.__dict__, "features": type(cfg.features)(percentile_window=window)})
        want = analyze_timeframe(b, cfg).regime
        rs = inc.RegimeStream(cfg.indicators, cfg.features, cfg.regime)
        got = [rs.update(*x) for x in zip(b.high.tolist(), b.low.tolist(), b.close.tolist(), strict=True)]
        assert got == list(want)
        assert len(set(got)) >= 3  # the data exercises several regimes, not just "unknown"
