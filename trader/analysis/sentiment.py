"""Market sentiment from the funding rate and Binance's global long/short account ratio, on a bar grid.

Each figure is read as it was known at a bar's close: a funding settlement from its settlement time, a ratio row
from its timestamp plus ``ratio_delay_ms`` (Binance does not say whether the stamp opens or closes the sampling
window, so by default one period is waited out: late rather than early). Where a source has no data the feature
is NaN and its ``has_*`` flag is 0 — absent, never a made-up zero, which would read as "balanced crowd".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.analysis.features import rolling_zscore_prior
from trader.data.timeframes import timeframe_ms

Array = np.ndarray


@dataclass(frozen=True)
class SentimentParams:
    funding_z_window: int = 30  # settlements in the funding baseline (10 days at 8h)
    funding_max_age_ms: int = 9 * 3_600_000  # a settlement older than this is stale (a gap in the file)
    ratio_period: str = "5m"
    ratio_delay_ms: int | None = None  # None → one ratio period
    ratio_change_rows: int = 12  # change over this many rows (an hour at 5m)
    ratio_z_window: int = 288  # rows in the ratio baseline (a day at 5m)
    ratio_max_periods: int = 3  # the latest row may be at most this many periods old
    crowded_z: float = 2.0  # |z| beyond which the crowd counts as one-sided


def _asof(event_ms: Array, grid_ms: Array, max_age_ms: int) -> Array:
    """Index of the latest event at or before each grid time, −1 when none or older than ``max_age_ms``."""
    idx = np.searchsorted(event_ms, grid_ms, side="right") - 1
    ok = idx >= 0
    age = np.where(ok, grid_ms - event_ms[np.maximum(idx, 0)], 0)
    idx[~ok | (age > max_age_ms)] = -1
    return idx


def _take(values: Array, idx: Array) -> Array:
    out = np.full(len(idx), np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def funding_features(grid_ms: Array, funding: pd.DataFrame | None, p: SentimentParams | None = None) -> dict[str, Array]:
    """funding_rate (last settled), funding_change (vs the settlement before), funding_z (vs the prior
    ``funding_z_window`` settlements), has_funding."""
    p = p or SentimentParams()
    n = len(grid_ms)
    if funding is None or funding.empty:
        nan = np.full(n, np.nan)
        return {"funding_rate": nan, "funding_change": nan.copy(), "funding_z": nan.copy(), "has_funding": np.zeros(n)}
    ts = funding["timestamp"].to_numpy("int64")
    rate = funding["funding_rate"].to_numpy("float64")
    change = np.full_like(rate, np.nan)
    change[1:] = np.diff(rate)
    z = rolling_zscore_prior(rate, p.funding_z_window) if len(rate) > p.funding_z_window else np.full_like(rate, np.nan)
    idx = _asof(ts, grid_ms, p.funding_max_age_ms)
    return {"funding_rate": _take(rate, idx), "funding_change": _take(change, idx), "funding_z": _take(z, idx),
            "has_funding": (idx >= 0).astype(float)}


def ratio_features(grid_ms: Array, ratio: pd.DataFrame | None, p: SentimentParams | None = None) -> dict[str, Array]:
    """ls_ratio (long/short accounts), long_account (fraction), ls_change (vs ``ratio_change_rows`` rows before),
    ls_z (vs the prior ``ratio_z_window`` rows), crowd (+1 crowded long, −1 crowded short, 0 neither; NaN unknown),
    has_ratio."""
    p = p or SentimentParams()
    n = len(grid_ms)
    keys = ("ls_ratio", "long_account", "ls_change", "ls_z", "crowd")
    if ratio is None or ratio.empty:
        return {**{k: np.full(n, np.nan) for k in keys}, "has_ratio": np.zeros(n)}
    period = timeframe_ms(p.ratio_period)
    delay = period if p.ratio_delay_ms is None else p.ratio_delay_ms
    known = ratio["timestamp"].to_numpy("int64") + delay
    lsr = ratio["long_short_ratio"].to_numpy("float64")
    k = p.ratio_change_rows
    change = np.full_like(lsr, np.nan)
    if len(lsr) > k:
        change[k:] = lsr[k:] / lsr[:-k] - 1.0
    # log: a ratio of 2 and of 0.5 are equally one-sided
    z = rolling_zscore_prior(np.log(lsr), p.ratio_z_window) if len(lsr) > p.ratio_z_window else np.full_like(lsr, np.nan)
    idx = _asof(known, grid_ms, p.ratio_max_periods * period)
    zz = _take(z, idx)
    crowd = np.where(np.isnan(zz), np.nan, np.where(zz >= p.crowded_z, 1.0, np.where(zz <= -p.crowded_z, -1.0, 0.0)))
    return {"ls_ratio": _take(lsr, idx), "long_account": _take(ratio["long_account"].to_numpy("float64"), idx),
            "ls_change": _take(change, idx), "ls_z": zz, "crowd": crowd, "has_ratio": (idx >= 0).astype(float)}


def sentiment_features(grid_ms: Array, funding: pd.DataFrame | None, ratio: pd.DataFrame | None,
                       p: SentimentParams | None = None) -> dict[str, Array]:
    """Both sources on one grid of known-at times (bar close times)."""
    return {**funding_features(grid_ms, funding, p), **ratio_features(grid_ms, ratio, p)}
