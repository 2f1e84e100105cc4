"""Per-timeframe market state built on the indicator set: trend, volume shock, volatility percentiles, momentum.

All functions are vectorised and causal (bar t sees bars ≤ t). Baselines exclude the bar being judged where that
matters (a volume spike must not inflate its own baseline and hide itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib
from numpy.lib.stride_tricks import sliding_window_view

Array = np.ndarray


@dataclass(frozen=True)
class FeatureParams:
    volume_window: int = 96  # bars of baseline (a day of 15m bars)
    volume_shock_z: float = 3.0  # |z| of log volume above which a bar is abnormal
    percentile_window: int = 500  # bars over which ATR / Bollinger width are ranked
    breakout_window: int = 48  # bars that define the range a breakout leaves
    breakout_max_width_atr: float = 6.0  # the range counts as a range only when no wider than this many ATRs


def rolling_zscore_prior(x: Array, window: int) -> Array:
    """z of x[t] against the mean and (population) deviation of x[t-window .. t-1]: the bar itself is not in its
    baseline. NaN while the baseline is incomplete or flat."""
    prior = np.full_like(x, np.nan)
    prior[1:] = x[:-1]
    mean = talib.SMA(prior, timeperiod=window)
    sd = talib.STDDEV(prior, timeperiod=window, nbdev=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, (x - mean) / np.where(sd > 0, sd, 1.0), np.nan)


def volume_shock(volume: Array, window: int = 96, threshold: float = 3.0) -> tuple[Array, Array]:
    """(z, flag): z-score of log(1 + volume) against its trailing baseline; flag +1 abnormally high, −1 abnormally
    low, 0 normal, NaN unknown. Log because volume is heavy-tailed: raw z-scores call every busy hour a shock."""
    z = rolling_zscore_prior(np.log1p(volume), window)
    flag = np.where(np.isnan(z), np.nan, np.where(z >= threshold, 1.0, np.where(z <= -threshold, -1.0, 0.0)))
    return z, flag


def rolling_percentile(x: Array, window: int, chunk: int = 65_536) -> Array:
    """Percentile rank (0..1) of x[t] among x[t-window+1 .. t]: the fraction of the window at or below it.
    NaN until the window is full of valid values. Chunked so the (n × window) comparison stays small in memory."""
    n = len(x)
    out = np.full(n, np.nan)
    if n < window:
        return out
    windows = sliding_window_view(x, window)  # row j covers x[j .. j+window-1], judged at t = j + window - 1
    for a in range(0, len(windows), chunk):
        w = windows[a : a + chunk]
        cur = w[:, -1:]
        with np.errstate(invalid="ignore"):
            rank = (w <= cur).sum(axis=1) / window
        bad = np.isnan(w).any(axis=1)
        rank[bad] = np.nan
        out[a + window - 1 : a + window - 1 + len(w)] = rank
    return out


def trend_direction(close: Array, ema_fast: Array, ema_slow: Array, supertrend_dir: Array) -> tuple[Array, Array]:
    """(direction, score). Three votes: fast EMA vs slow EMA, close vs slow EMA, SuperTrend. Direction is ±1 only
    when all three agree, else 0 (mixed evidence is no trend); score is their mean (−1..1). NaN during warm-up."""
    votes = np.vstack([np.sign(ema_fast - ema_slow), np.sign(close - ema_slow), supertrend_dir])
    score = votes.mean(axis=0)  # NaN propagates: unknown until every vote is
    direction = np.where(np.isnan(score), np.nan, np.where(score >= 1.0, 1.0, np.where(score <= -1.0, -1.0, 0.0)))
    return direction, score


def range_breakout(high: Array, low: Array, close: Array, atr: Array, window: int = 48,
                   max_width_atr: float = 6.0) -> tuple[Array, Array, Array, Array]:
    """(flag, range_high, range_low, width_atr). The range is the high/low of the ``window`` bars *before* t; bar t
    breaks out (+1 up, −1 down) when it closes beyond it while the range was tight (no wider than
    ``max_width_atr`` ATRs, ATR as of t − 1). Completion bar = t; nothing after t is read."""
    rh = np.full_like(close, np.nan)
    rl = np.full_like(close, np.nan)
    rh[1:] = talib.MAX(high, timeperiod=window)[:-1]
    rl[1:] = talib.MIN(low, timeperiod=window)[:-1]
    prev_atr = np.full_like(close, np.nan)
    prev_atr[1:] = atr[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        width = (rh - rl) / prev_atr
        tight = width <= max_width_atr
        flag = np.where(tight & (close > rh), 1.0, np.where(tight & (close < rl), -1.0, 0.0))
    flag[np.isnan(width)] = np.nan
    return flag, rh, rl, width


def timeframe_features(ind: dict[str, Array], bars_high: Array, bars_low: Array, volume: Array,
                       p: FeatureParams | None = None) -> dict[str, Array]:
    """The state features of one timeframe, from its ``indicator_set`` output."""
    p = p or FeatureParams()
    c = ind["close"]
    out: dict[str, Array] = {}
    out["trend_dir"], out["trend_score"] = trend_direction(c, ind["ema_fast"], ind["ema_slow"], ind["supertrend_dir"])
    out["trend_strength"] = ind["adx"]
    out["volume_z"], out["volume_shock"] = volume_shock(volume, p.volume_window, p.volume_shock_z)
    out["atr_pct"] = rolling_percentile(ind["natr"], p.percentile_window)
    out["bb_width_pct"] = rolling_percentile(ind["bb_width"], p.percentile_window)
    # Squeeze: Bollinger inside Keltner, the classic "volatility is coiled" condition.
    with np.errstate(invalid="ignore"):
        squeeze = (ind["bb_upper"] < ind["kc_upper"]) & (ind["bb_lower"] > ind["kc_lower"])
    out["squeeze"] = np.where(np.isnan(ind["bb_upper"]) | np.isnan(ind["kc_upper"]), np.nan, squeeze.astype(float))
    out["breakout"], out["range_high"], out["range_low"], out["range_width_atr"] = range_breakout(
        bars_high, bars_low, c, ind["atr"], p.breakout_window, p.breakout_max_width_atr)
    # Momentum set: centred so that 0 is neutral and the sign is the direction, for a fusion layer to weigh.
    out["mom_rsi"] = (ind["rsi_14"] - 50.0) / 50.0
    out["mom_stochrsi"] = (ind["stochrsi_k"] - 50.0) / 50.0
    out["mom_ultosc"] = (ind["ultosc"] - 50.0) / 50.0
    out["mom_mfi"] = (ind["mfi"] - 50.0) / 50.0
    out["mom_willr"] = (ind["willr"] + 50.0) / 50.0
    out["mom_cci"] = np.clip(ind["cci"] / 200.0, -1.0, 1.0)
    out["mom_macd"] = ind["macd_hist"] / ind["atr"]  # histogram in ATRs: comparable across prices
    return out
