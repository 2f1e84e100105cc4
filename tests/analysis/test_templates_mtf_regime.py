"""DTW template matching, multi-timeframe alignment by close time, the rule-based regime."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dtaidistance import dtw

from tests.analysis.conftest import real_bars
from trader.analysis.bars import resample_bars
from trader.analysis.mtf import align, latest_closed_index, trend_alignment
from trader.analysis.regime import REGIMES, classify_regime, regime_series
from trader.analysis.templates import TemplateParams, load_templates, match_templates, template_distances

HOUR = 3_600_000


# -- templates ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", load_templates(), ids=lambda t: t.name)
def test_each_template_drawn_with_noise_matches_itself(template):
    p = TemplateParams()
    rng = np.random.default_rng(11)
    xs, ys = zip(*template.points, strict=True)
    shape = np.interp(np.linspace(0, 1, p.length), xs, ys)
    prices = 30_000 + 2_000 * shape + rng.normal(0, 60, p.length)  # any level and size: only the shape counts
    series = np.r_[np.full(10, prices[0]) + rng.normal(0, 5, 10), prices]
    matches = match_templates(series, p)
    last = [m for m in matches if m.bar == len(series) - 1]
    assert last and last[0].name == template.name and last[0].direction == template.direction


def test_distances_are_dtaidistances_own_and_random_walks_rarely_match():
    p = TemplateParams()
    rng = np.random.default_rng(5)
    c = 100 + np.cumsum(rng.normal(size=3000))
    dist, bars = template_distances(c, p)
    assert dist.shape == (len(load_templates()), 3000 - p.length + 1)
    t = load_templates()[0]
    w = c[bars[17] - p.length + 1 : bars[17] + 1]
    want = dtw.distance((w - w.mean()) / w.std(), t.curve(p.length), window=int(p.band * p.length))
    assert dist[0, 17] == pytest.approx(want / math.sqrt(p.length), rel=1e-9)
    assert len(match_templates(c, p)) < 0.03 * len(bars)


def test_template_matches_on_real_1h_windows():
    for pair in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"):
        b = real_bars(pair, "1h")
        p = TemplateParams()
        matches = match_templates(b.close, p)
        dist, bars = template_distances(b.close, p)
        for m in matches:
            j = int(np.searchsorted(bars, m.bar))
            assert m.distance == pytest.approx(np.nanmin(dist[:, j])) and m.distance <= p.max_distance
    flat = np.full(100, 5.0)
    assert match_templates(flat) == []  # a flat window has no shape


# -- multi-timeframe ------------------------------------------------------------------------------------------
def test_a_higher_bar_is_known_only_from_its_close():
    base = real_bars("BTC/USDT:USDT", "1m").head(600)
    hourly = resample_bars(base, "1h")
    assert (hourly.ts_ms % HOUR == 0).all()  # epoch-aligned, as the store resamples
    idx = latest_closed_index(base.close_ms, hourly.close_ms, HOUR)
    for i in range(len(base)):
        k = idx[i]
        if k >= 0:
            assert hourly.close_ms[k] <= base.close_ms[i] < hourly.close_ms[k] + HOUR
        else:
            assert not (hourly.close_ms <= base.close_ms[i]).any()
    # the minute that closes an hour sees that hour; the one before does not
    first_close = hourly.close_ms[0]
    i = int(np.flatnonzero(base.close_ms == first_close)[0])
    assert idx[i] == 0 and idx[i - 1] == -1


def test_stale_higher_bars_are_not_carried_over_a_hole():
    tf_close = np.array([1, 2, 5]) * HOUR  # the bars closing at 3h and 4h are missing
    base_close = np.array([2, 2.5, 3, 3.5, 4.5, 5]) * HOUR
    idx = latest_closed_index(base_close.astype("int64"), tf_close, HOUR)
    assert idx.tolist() == [1, 1, -1, -1, -1, 2]
    assert np.isnan(align(np.array([1.0, -1.0, 1.0]), idx)[2])


def test_trend_alignment_and_divergence():
    d = [np.array([1, 1, -1, np.nan, 1, np.nan]), np.array([1, 0, -1, 1, 1, np.nan]),
         np.array([1, 1, -1, 1, -1, np.nan])]
    al = trend_alignment(d)
    assert al.aligned[:3].tolist() == [1, 0, -1]
    assert al.aligned[3] == 0 and al.known[3] == 2  # not every timeframe known: no alignment claimed
    assert al.divergence[:5].tolist()[:3] == [0, 0, 0] and al.divergence[4] == 1 and np.isnan(al.divergence[3])
    assert np.isnan(al.score[5]) and np.isnan(al.aligned[5])


# -- regime ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("features", "want"), [
    ({"adx": 30, "trend_dir": 1, "atr_pct": 0.5, "bb_width_pct": 0.5, "breakout": 0}, "trending"),
    ({"adx": 30, "trend_dir": 0, "atr_pct": 0.5, "bb_width_pct": 0.5, "breakout": 0}, "ranging"),
    ({"adx": 15, "trend_dir": 1, "atr_pct": 0.5, "bb_width_pct": 0.5, "breakout": 0}, "ranging"),
    ({"adx": 30, "trend_dir": 1, "atr_pct": 0.95, "bb_width_pct": 0.5, "breakout": 0}, "volatile"),
    ({"adx": 30, "trend_dir": 1, "atr_pct": 0.5, "bb_width_pct": 0.97, "breakout": 0}, "volatile"),
    ({"adx": 30, "trend_dir": 1, "atr_pct": 0.95, "bb_width_pct": 0.5, "breakout": -1}, "breakout"),
    ({"adx": math.nan, "trend_dir": 1, "atr_pct": 0.5}, "unknown"),
    ({"adx": 30}, "unknown"),
])
def test_classify_regime_rules(features, want):
    assert classify_regime(features) == want


def test_regime_series_agrees_with_the_scalar_rules_on_real_data():
    from trader.analysis.features import timeframe_features
    from trader.analysis.indicators import indicator_set

    b = real_bars("SOL/USDT:USDT", "15m")
    ind = indicator_set(b)
    feats = timeframe_features(ind, b.high, b.low, b.volume)
    feats["adx"] = ind["adx"]
    labels = regime_series(feats)
    keys = ("adx", "trend_dir", "atr_pct", "bb_width_pct", "breakout")
    for i in range(0, len(b), 7):
        assert labels[i] == classify_regime({k: float(feats[k][i]) for k in keys})
    assert set(REGIMES) <= set(labels)  # a month of SOL shows every regime
