"""A first, rule-based market regime: ranging, trending, volatile or breakout.

It only reads features the analyzer already computes, so a later learned classifier can take the same inputs:
``adx`` (trend strength), ``trend_dir`` (−1/0/+1), ``atr_pct`` and ``bb_width_pct`` (volatility percentiles,
0..1) and ``breakout`` (−1/0/+1). Rules, first match wins:

1. breakout — the bar closed out of a tight range (``breakout != 0``): a state change outranks the state;
2. volatile — ATR percentile ≥ ``volatile_atr_pct`` (0.90) or Bollinger-width percentile ≥ ``volatile_bb_pct``
   (0.95): ranges are unusually wide for this market, whatever the direction;
3. trending — ADX ≥ ``trend_adx`` (25, Wilder's own threshold) and the trend votes agree (``trend_dir != 0``);
4. ranging — everything else.

While the inputs are still warming up (ADX or the ATR percentile NaN) the answer is ``unknown``: calling it
"ranging" would be a made-up reading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

REGIMES = ("ranging", "trending", "volatile", "breakout")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RegimeThresholds:
    trend_adx: float = 25.0
    volatile_atr_pct: float = 0.90
    volatile_bb_pct: float = 0.95


def _val(features: Mapping[str, float], key: str) -> float:
    v = features.get(key, math.nan)
    return math.nan if v is None else float(v)


def classify_regime(features: Mapping[str, float], t: RegimeThresholds | None = None) -> str:
    t = t or RegimeThresholds()
    adx, atr_pct = _val(features, "adx"), _val(features, "atr_pct")
    bb_pct, breakout = _val(features, "bb_width_pct"), _val(features, "breakout")
    trend = _val(features, "trend_dir")
    if math.isnan(adx) or math.isnan(atr_pct):
        return UNKNOWN
    if not math.isnan(breakout) and breakout != 0:
        return "breakout"
    if atr_pct >= t.volatile_atr_pct or (not math.isnan(bb_pct) and bb_pct >= t.volatile_bb_pct):
        return "volatile"
    if adx >= t.trend_adx and not math.isnan(trend) and trend != 0:
        return "trending"
    return "ranging"


def regime_series(features: Mapping[str, np.ndarray], t: RegimeThresholds | None = None) -> np.ndarray:
    """``classify_regime`` on every bar at once (same rules, vectorised); an array of labels (dtype object)."""
    t = t or RegimeThresholds()
    adx, atr_pct = features["adx"], features["atr_pct"]
    bb_pct, breakout, trend = features["bb_width_pct"], features["breakout"], features["trend_dir"]
    with np.errstate(invalid="ignore"):
        conds = [np.isnan(adx) | np.isnan(atr_pct),
                 np.nan_to_num(breakout) != 0,
                 (atr_pct >= t.volatile_atr_pct) | (bb_pct >= t.volatile_bb_pct),
                 (adx >= t.trend_adx) & (np.nan_to_num(trend) != 0)]
    return np.select(conds, [UNKNOWN, "breakout", "volatile", "trending"], default="ranging").astype(object)
