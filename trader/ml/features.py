"""The feature matrix on the analyzer's 5m decision grid. Every value at row t is known at the close of grid bar t.

Groups (names are stable; ``FEATURE_NAMES`` is the full list, models store the subset they use):

* price momentum: log returns of the grid close over 1, 3, 6, 12, 48 bars;
* volatility: realised volatility (std of 1-bar log returns) over 12 and 48 bars, the 12-bar range;
* volume change: 1-bar change of log volume, log volume against its prior 48-bar mean;
* the analyzer's indicators per timeframe (5m, 15m, 1h, 4h), scale-free (oscillators centred, distances in
  fractions of price), read through ``latest_closed_index`` (a 1h bar only from its close on);
* multi-timeframe alignment score and divergence, one-hot regime of the analyzer's regime timeframe;
* funding (rate, change, z) and the long/short account ratio (z, change, long share) as of their known times;
* order-book features where snapshots were recorded (``has_book`` 0 elsewhere);
* time of day and weekday as sine/cosine of the decision time.

Missing values: a value that stops arriving (a stale higher-timeframe bar, a funding hole) is carried forward for
at most ``FILL_LIMIT`` rows within a contiguous segment; what is still missing stays NaN and is imputed by the
scaler with the training mean. Warm-up rows are not samples (``sample_ok``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.analysis.analyzer import MarketAnalysis
from trader.analysis.mtf import align, latest_closed_index
from trader.analysis.regime import REGIMES
from trader.data.timeframes import timeframe_ms

FEATURE_SCHEMA = "ml-features-1"  # bump when a definition changes: models trained on the old one are refused
TIMEFRAMES = ("5m", "15m", "1h", "4h")
RETURN_BARS = (1, 3, 6, 12, 48)
FILL_LIMIT = 12
WARMUP_ROWS = 48
DAY_MS = 86_400_000

_TF_KEYS = (
    "mom_rsi", "mom_stochrsi", "mom_ultosc", "mom_mfi", "mom_willr", "mom_cci", "mom_macd", "adx", "di_diff",
    "trend_score", "supertrend_dir", "st_gap", "bb_percent_b", "bb_width", "natr", "atr_pct", "bb_width_pct",
    "volume_z", "cmf", "squeeze", "breakout", "ema_gap", "ema_fast_gap", "ret_1", "pattern_bull", "pattern_bear",
    "template_dir",
)
_GRID_KEYS = (
    *(f"ret_{k}" for k in RETURN_BARS), "rv_12", "rv_48", "range_12", "vol_chg_1", "vol_rel_48",
    "alignment_score", "divergence", *(f"regime_{r}" for r in REGIMES),
    "funding_bps", "funding_change_bps", "funding_z", "has_funding",
    "ls_z", "ls_change", "long_account", "has_ratio",
    "ob_imbalance", "ob_weighted_imbalance", "ob_band_imbalance", "ob_spread", "has_book",
    "hour_sin", "hour_cos", "dow_sin", "dow_cos",
)
FEATURE_NAMES: tuple[str, ...] = (*_GRID_KEYS, *(f"{k}_{tf}" for tf in TIMEFRAMES for k in _TF_KEYS))


@dataclass
class FeatureSet:
    """One pair's features and the grid arrays labels are made from. Row t = grid bar t (decision at its close)."""

    pair: str
    close_ms: np.ndarray  # int64, when row t is known
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    X: pd.DataFrame  # FEATURE_NAMES columns, float64
    regime: np.ndarray  # analyzer regime label per row (object)
    segment: np.ndarray  # contiguous-stretch id (no missing grid bar inside)
    pos: np.ndarray  # position of the row inside its segment
    real: np.ndarray  # bool: the grid bar contains no invented (filled) base bar
    sample_ok: np.ndarray  # bool: a usable sample (real, warmed up)

    def __len__(self) -> int:
        return len(self.close_ms)


def _tf_features(analysis: MarketAnalysis, tf: str, grid_close: np.ndarray) -> dict[str, np.ndarray]:
    fa = analysis.frames[tf]
    ind, ft = fa.indicators, fa.features
    c = fa.bars.close
    with np.errstate(invalid="ignore", divide="ignore"):
        ret1 = np.full_like(c, np.nan)
        ret1[1:] = np.log(c[1:] / c[:-1])
        if len(fa.bars) > 1:  # a return across a hole in this timeframe is not a 1-bar return
            ret1[1:][np.diff(fa.bars.ts_ms) != timeframe_ms(tf)] = np.nan
        cols = {
            **{k: ft[k] for k in ("mom_rsi", "mom_stochrsi", "mom_ultosc", "mom_mfi", "mom_willr", "mom_cci",
                                  "mom_macd", "trend_score", "atr_pct", "bb_width_pct", "volume_z", "squeeze",
                                  "breakout", "pattern_bull", "pattern_bear", "template_dir")},
            "adx": ind["adx"] / 100.0,
            "di_diff": (ind["plus_di"] - ind["minus_di"]) / 100.0,
            "supertrend_dir": ind["supertrend_dir"],
            "st_gap": c / ind["supertrend"] - 1.0,
            "bb_percent_b": ind["bb_percent_b"],
            "bb_width": ind["bb_width"],
            "natr": ind["natr"],
            "cmf": ind["cmf"],
            "ema_gap": c / ind["ema_slow"] - 1.0,
            "ema_fast_gap": ind["ema_fast"] / ind["ema_slow"] - 1.0,
            "ret_1": ret1,
        }
    idx = latest_closed_index(grid_close, fa.bars.close_ms, timeframe_ms(tf))
    return {f"{k}_{tf}": align(np.asarray(v, dtype="float64"), idx) for k, v in cols.items()}


def _segments(ts_ms: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    if not len(ts_ms):
        return np.zeros(0, "int64"), np.zeros(0, "int64")
    brk = np.r_[True, np.diff(ts_ms) != step]
    seg = np.cumsum(brk) - 1
    start = np.flatnonzero(brk)
    pos = np.arange(len(ts_ms)) - start[seg]
    return seg.astype("int64"), pos.astype("int64")


def _windowed(x: np.ndarray, pos: np.ndarray, need: int) -> np.ndarray:
    """NaN where the window of ``need`` rows would reach back across a segment start."""
    out = x.copy()
    out[pos < need] = np.nan
    return out


def _rolling(x: np.ndarray, w: int, fn: str) -> np.ndarray:
    s = pd.Series(x)
    r = s.rolling(w, min_periods=w)
    return getattr(r, fn)().to_numpy() if fn != "std" else r.std(ddof=0).to_numpy()


def build_features(analysis: MarketAnalysis, filled_ts_ms: Iterable[int] | np.ndarray | None = None) -> FeatureSet:
    """Features for every grid bar of ``analysis`` (grid timeframe 5m).

    ``filled_ts_ms``: open times of invented base bars (``data.fill_gaps``); grid bars containing one are not
    samples and cannot end a label."""
    g = analysis.grid
    grid_tf = analysis.config.grid_timeframe
    step = timeframe_ms(grid_tf)
    bars = analysis.frames[grid_tf].bars
    ts, close_ms = bars.ts_ms, bars.close_ms
    c, h, lo, v = bars.close, bars.high, bars.low, bars.volume
    n = len(ts)
    seg, pos = _segments(ts, step)
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        logc = np.log(c)
        for k in RETURN_BARS:
            r = np.full(n, np.nan)
            r[k:] = logc[k:] - logc[:-k]
            out[f"ret_{k}"] = _windowed(r, pos, k)
        r1 = out["ret_1"]
        for w in (12, 48):
            out[f"rv_{w}"] = _windowed(_rolling(r1, w, "std"), pos, w)
        out["range_12"] = _windowed((_rolling(h, 12, "max") - _rolling(lo, 12, "min")) / c, pos, 11)
        lv = np.log1p(v)
        d = np.full(n, np.nan)
        d[1:] = lv[1:] - lv[:-1]
        out["vol_chg_1"] = _windowed(d, pos, 1)
        prior = np.full(n, np.nan)
        prior[1:] = _rolling(lv, 48, "mean")[:-1]
        out["vol_rel_48"] = _windowed(lv - prior, pos, 48)
    out["alignment_score"] = np.asarray(g["alignment_score"], dtype="float64")
    out["divergence"] = np.asarray(g["divergence"], dtype="float64")
    regime = np.asarray(g["regime"], dtype=object)
    for r in REGIMES:
        out[f"regime_{r}"] = np.where(regime == "unknown", np.nan, (regime == r).astype(float))
    out["funding_bps"] = np.asarray(g["funding_rate"]) * 1e4
    out["funding_change_bps"] = np.asarray(g["funding_change"]) * 1e4
    out["funding_z"] = np.asarray(g["funding_z"])
    out["has_funding"] = np.asarray(g["has_funding"], dtype="float64")
    out["ls_z"], out["ls_change"] = np.asarray(g["ls_z"]), np.asarray(g["ls_change"])
    out["long_account"], out["has_ratio"] = np.asarray(g["long_account"]), np.asarray(g["has_ratio"], dtype="float64")
    for k in ("ob_imbalance", "ob_weighted_imbalance", "ob_band_imbalance", "ob_spread", "has_book"):
        out[k] = np.asarray(g[k], dtype="float64")
    day = (close_ms % DAY_MS) / DAY_MS
    week = (((close_ms // DAY_MS) + 3) % 7 + day) / 7.0  # 1970-01-01 was a Thursday: Monday = 0
    out["hour_sin"], out["hour_cos"] = np.sin(2 * np.pi * day), np.cos(2 * np.pi * day)
    out["dow_sin"], out["dow_cos"] = np.sin(2 * np.pi * week), np.cos(2 * np.pi * week)
    for tf in TIMEFRAMES:
        out.update(_tf_features(analysis, tf, close_ms))
    X = pd.DataFrame({k: out[k] for k in FEATURE_NAMES})
    X = X.groupby(seg).ffill(limit=FILL_LIMIT)  # causal: only earlier rows of the same segment
    real = np.ones(n, dtype=bool)
    if filled_ts_ms is not None:
        f = np.unique(np.asarray(list(filled_ts_ms) if not isinstance(filled_ts_ms, np.ndarray) else filled_ts_ms,
                                 dtype="int64"))
        if len(f):
            bucket = np.unique((f // step) * step)
            real = ~np.isin(ts, bucket)
    core = X[["ret_48", "rv_48", "mom_rsi_5m", "adx_5m"]].notna().all(axis=1).to_numpy()
    sample_ok = real & (pos >= WARMUP_ROWS) & core
    return FeatureSet(analysis.pair, close_ms.astype("int64"), c.copy(), h.copy(), lo.copy(), X, regime, seg, pos,
                      real, sample_ok)
