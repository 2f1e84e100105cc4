"""No lookahead anywhere: cutting the bars after T leaves every value and decision before T unchanged.

Each check computes on the full series and on the series cut at T and compares the first T values exactly
(TA-Lib is deterministic; any difference means a value read a later bar)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from tests.analysis.conftest import real_bars
from trader.analysis.analyzer import AnalyzerConfig, analyze
from trader.analysis.bars import to_bars
from trader.analysis.features import timeframe_features
from trader.analysis.indicators import indicator_set
from trader.analysis.orderflow import BookSnapshot
from trader.analysis.patterns import detect_patterns
from trader.analysis.sentiment import sentiment_features
from trader.analysis.templates import TemplateParams, match_templates
from trader.data.store import bundled_data_dir, load_candles, load_funding

CASES = [("BTC/USDT:USDT", "15m"), ("ETH/USDT:USDT", "5m"), ("SOL/USDT:USDT", "1h")]


def _cuts(n: int) -> list[int]:
    return sorted({60, n // 3, n // 2 + 7, n - 40, n - 1})


@pytest.mark.parametrize(("pair", "tf"), CASES)
def test_every_indicator_and_feature_is_causal(pair, tf):
    b = real_bars(pair, tf)
    full_ind = indicator_set(b)
    full_feat = timeframe_features(full_ind, b.high, b.low, b.volume)
    assert len(full_ind) >= 35 and len(full_feat) >= 18
    for t in _cuts(len(b)):
        cut = b.head(t)
        ind = indicator_set(cut)
        feat = timeframe_features(ind, cut.high, cut.low, cut.volume)
        for name in full_ind:
            np.testing.assert_array_equal(ind[name], full_ind[name][:t], err_msg=f"{name} at cut {t}")
        for name in full_feat:
            np.testing.assert_array_equal(feat[name], full_feat[name][:t], err_msg=f"{name} at cut {t}")


@pytest.mark.parametrize(("pair", "tf"), CASES)
def test_patterns_use_nothing_after_their_completion_bar(pair, tf):
    b = real_bars(pair, tf)
    full = detect_patterns(b.high, b.low, b.close)
    assert full, "real data shows some patterns"
    for t in _cuts(len(b)):
        cut = b.head(t)
        got = detect_patterns(cut.high, cut.low, cut.close)
        assert got == [d for d in full if d.completion_bar < t], f"cut {t}"
    for d in full:
        assert all(bar <= d.completion_bar for bar, _ in d.pivots)


def test_template_matches_use_only_their_window():
    b = real_bars("BTC/USDT:USDT", "15m")
    p = TemplateParams(max_distance=0.35)
    full = match_templates(b.close, p)
    assert full
    for t in _cuts(len(b)):
        assert match_templates(b.close[:t], p) == [m for m in full if m.bar < t]


def test_sentiment_at_a_time_ignores_later_rows():
    funding = load_funding(bundled_data_dir(), "BTC/USDT:USDT")
    ts = 1_746_403_200_000 + 300_000 * np.arange(4000)
    ratio = pd.DataFrame({"timestamp": ts, "long_short_ratio": 1 + np.sin(np.arange(4000) / 50) / 3,
                          "long_account": 0.5, "short_account": 0.5})
    grid = ts[::7] + 60_000
    full = sentiment_features(grid, funding, ratio)
    for t_ms in (grid[100], grid[300], grid[-5]):
        cutf, cutr = funding[funding.timestamp <= t_ms], ratio[ratio.timestamp <= t_ms]
        part = sentiment_features(grid[grid <= t_ms], cutf, cutr)
        k = int((grid <= t_ms).sum())
        for name, v in full.items():
            np.testing.assert_array_equal(part[name], v[:k], err_msg=name)


def test_analyzer_grid_and_snapshots_do_not_change_when_later_candles_are_removed():
    df = load_candles(bundled_data_dir(), "ETH/USDT:USDT", "1m").iloc[:20_000]
    funding = load_funding(bundled_data_dir(), "ETH/USDT:USDT")
    book = [BookSnapshot(int(t), "ETHUSDT", np.array([[100.0, 1.0 + i % 3]]), np.array([[100.1, 2.0]]))
            for i, t in enumerate(df["timestamp"].iloc[::30])]
    cfg = AnalyzerConfig(template_timeframes=("15m", "1h"))
    full = analyze("ETH/USDT:USDT", df, funding=funding, book=book, config=cfg)
    for cut_ms in (int(df.timestamp.iloc[9_000]) + 60_000, int(df.timestamp.iloc[15_437]) + 60_000):
        # the live engine's view at cut_ms: candles closed by then, funding settled by then, books taken by then
        part = analyze("ETH/USDT:USDT", df[df.timestamp < cut_ms], funding=funding[funding.timestamp <= cut_ms],
                       book=[s for s in book if s.ts_ms <= cut_ms], config=cfg)
        k = len(part.grid["close_ms"])
        assert k and part.grid["close_ms"][-1] <= cut_ms
        for name, v in full.grid.items():
            np.testing.assert_array_equal(part.grid[name], v[:k], err_msg=name)
        assert _plain(part.snapshot(cut_ms)) == _plain(full.snapshot(cut_ms))
        assert [e for e in full.pattern_events() if e.completion_ms <= cut_ms] == part.pattern_events()


def _plain(obj):
    """A snapshot as nested plain values with NaN → None (NaN != NaN would fail any equality)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def test_now_ms_drops_the_forming_candle():
    df = load_candles(bundled_data_dir(), "BTC/USDT:USDT", "1m").iloc[:3000]
    last_open = int(df.timestamp.iloc[-1])
    a = analyze("BTC/USDT:USDT", df, now_ms=last_open + 30_000)  # the last minute is still forming
    assert len(a.base) == len(df) - 1
    b = analyze("BTC/USDT:USDT", df.iloc[:-1])
    np.testing.assert_array_equal(a.grid["trend_5m"], b.grid["trend_5m"])
    assert to_bars(df).close_ms[-1] == last_open + 60_000
