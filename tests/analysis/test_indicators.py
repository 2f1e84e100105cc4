"""The indicators TA-Lib lacks (SuperTrend, Keltner, Ichimoku, CMF) against plain loops written here from the
textbook definitions, and the TA-Lib ones for their settings and ranges."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.analysis.conftest import real_bars
from trader.analysis import indicators as ind

PAIR_TF = [("BTC/USDT:USDT", "15m"), ("ETH/USDT:USDT", "1h"), ("SOL/USDT:USDT", "5m")]


def wilder_atr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    """TR from the second bar (the first has no previous close), first ATR = mean of the first n TRs, then
    Wilder's smoothing: TA-Lib's convention."""
    out = [math.nan] * len(c)
    tr = [math.nan] + [max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(c))]
    if len(c) <= n:
        return out
    a = sum(tr[1 : n + 1]) / n
    out[n] = a
    for i in range(n + 1, len(c)):
        a = (a * (n - 1) + tr[i]) / n
        out[i] = a
    return out


def ema_loop(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    a = sum(x[:n]) / n
    out[n - 1] = a
    k = 2.0 / (n + 1)
    for i in range(n, len(x)):
        a = a + k * (x[i] - a)
        out[i] = a
    return out


def supertrend_loop(h: list[float], lo: list[float], c: list[float], n: int, m: float) -> tuple[list[float], list[float]]:
    """The TradingView script, line by line."""
    atr = wilder_atr(h, lo, c, n)
    line, direction = [math.nan] * len(c), [math.nan] * len(c)
    up_prev = dn_prev = None
    trend = 1
    for i in range(len(c)):
        if math.isnan(atr[i]):
            continue
        src = (h[i] + lo[i]) / 2
        up, dn = src - m * atr[i], src + m * atr[i]
        if up_prev is not None:
            up = max(up, up_prev) if c[i - 1] > up_prev else up
            dn = min(dn, dn_prev) if c[i - 1] < dn_prev else dn
            if trend == -1 and c[i] > dn_prev:
                trend = 1
            elif trend == 1 and c[i] < up_prev:
                trend = -1
        line[i] = up if trend == 1 else dn
        direction[i] = trend
        up_prev, dn_prev = up, dn
    return line, direction


@pytest.mark.parametrize(("pair", "tf"), PAIR_TF)
def test_supertrend_matches_the_reference_loop(pair, tf):
    b = real_bars(pair, tf)
    line, direction = ind.supertrend(b.high, b.low, b.close, 10, 3.0)
    want_line, want_dir = supertrend_loop(b.high.tolist(), b.low.tolist(), b.close.tolist(), 10, 3.0)
    np.testing.assert_allclose(line, want_line, rtol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(direction, want_dir)
    assert {-1.0, 1.0} <= set(np.unique(direction[~np.isnan(direction)]))  # real data flips both ways


@pytest.mark.parametrize(("pair", "tf"), PAIR_TF)
def test_keltner_matches_ema_and_wilder_atr_loops(pair, tf):
    b = real_bars(pair, tf)
    up, mid, lo = ind.keltner(b.high, b.low, b.close, 20, 2.0)
    e = np.array(ema_loop(b.close.tolist(), 20))
    a = np.array(wilder_atr(b.high.tolist(), b.low.tolist(), b.close.tolist(), 20))
    np.testing.assert_allclose(mid, e, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(up, e + 2 * a, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(lo, e - 2 * a, rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize(("pair", "tf"), PAIR_TF)
def test_ichimoku_matches_a_pandas_computation_and_reads_no_future_cloud(pair, tf):
    b = real_bars(pair, tf)
    h, lo, c = pd.Series(b.high), pd.Series(b.low), pd.Series(b.close)

    def mid(n: int) -> pd.Series:
        return (h.rolling(n).max() + lo.rolling(n).min()) / 2

    ich = ind.ichimoku(b.high, b.low, b.close, 9, 26, 52)
    np.testing.assert_allclose(ich.tenkan, mid(9), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ich.kijun, mid(26), rtol=1e-12, equal_nan=True)
    # the cloud under bar t was computed at t - 26 (pandas shift(+26): from the past, never shift(-26))
    np.testing.assert_allclose(ich.span_a, ((mid(9) + mid(26)) / 2).shift(26), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ich.span_b, mid(52).shift(26), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ich.chikou_diff, c - c.shift(26), rtol=1e-12, equal_nan=True)


def test_cmf_matches_the_loop_and_handles_flat_bars():
    for pair, tf in PAIR_TF:
        b = real_bars(pair, tf)
        h, lo, c, v = (x.tolist() for x in (b.high, b.low, b.close, b.volume))
        want = [math.nan] * len(c)
        for t in range(19, len(c)):
            flow = vol = 0.0
            for i in range(t - 19, t + 1):
                rng = h[i] - lo[i]
                flow += ((c[i] - lo[i]) - (h[i] - c[i])) / rng * v[i] if rng > 0 else 0.0
                vol += v[i]
            want[t] = flow / vol if vol > 0 else math.nan
        np.testing.assert_allclose(ind.cmf(b.high, b.low, b.close, b.volume, 20), want, rtol=1e-7, atol=1e-12,
                                   equal_nan=True)
    flat = np.full(30, 100.0)
    out = ind.cmf(flat, flat, flat, np.ones(30), 20)
    assert np.all(out[19:] == 0.0)  # no range: no flow, and not NaN
    assert np.isnan(ind.cmf(flat, flat, flat, np.zeros(30), 20)[19:]).all()  # no volume: unknown


def test_stoch_rsi_is_the_14_14_3_3_definition():
    b = real_bars("BTC/USDT:USDT", "15m")
    k, d = ind.stoch_rsi(b.close, 14, 14, 3, 3)
    r = pd.Series(ind.rsi(b.close, 14))
    raw = 100 * (r - r.rolling(14).min()) / (r.rolling(14).max() - r.rolling(14).min())
    want_k = raw.rolling(3).mean().to_numpy()
    want_d = pd.Series(want_k).rolling(3).mean().to_numpy()
    # TA-Lib starts %K where %D starts (two bars later than the loop); from there on they must agree.
    first = int(np.flatnonzero(~np.isnan(d))[0])
    assert first == int(np.flatnonzero(~np.isnan(want_d))[0])
    np.testing.assert_allclose(k[first:], want_k[first:], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(d[first:], want_d[first:], atol=1e-6, equal_nan=True)


def test_atr_channels_and_the_full_set_shapes_and_ranges():
    b = real_bars("ETH/USDT:USDT", "1h")
    out = ind.indicator_set(b)
    n = len(b)
    assert all(len(v) == n and v.dtype == np.float64 for v in out.values())
    a = np.array(wilder_atr(b.high.tolist(), b.low.tolist(), b.close.tolist(), 14))
    hh = pd.Series(b.high).rolling(14).max().to_numpy()
    np.testing.assert_allclose(out["atr_long_stop"], hh - 3 * a, rtol=1e-9, equal_nan=True)
    for name, lo, hi in [("rsi_9", 0, 100), ("rsi_14", 0, 100), ("stochrsi_k", 0, 100), ("ultosc", 0, 100),
                         ("mfi", 0, 100), ("willr", -100, 0), ("cmf", -1, 1), ("adx", 0, 100)]:
        v = out[name][~np.isnan(out[name])]
        assert len(v) > n * 0.8, name
        assert v.min() >= lo - 1e-9 and v.max() <= hi + 1e-9, name
    assert np.nanmax(np.abs(out["sar"] / b.close - 1)) < 0.2
    assert (out["bb_upper"][30:] >= out["bb_lower"][30:]).all()
