"""Targets. Labels read the future by definition; they are never features, and ``known_lag`` says when each one
becomes known (the purge in splits.py and the persistence baseline both rely on it).

Direction: for horizon h minutes, r = log(close[t+h] / close[t]); ``UP`` when r > cost, ``DOWN`` when r < −cost,
``FLAT`` in between: a move smaller than the round trip's costs is not a tradable direction (dead zone).
Known at t + h.

Reversal points: a bar is a ``BOTTOM`` when its low is the lowest of the k bars either side and price then rises
at least ``min_move`` above it within those k bars (``TOP`` mirrored): a swing pivot worth trading. Known at t + k,
when the k bars after it have closed (confirmation).

Unknown labels (the future bar is beyond the data, across a hole, or an invented bar) are −1 and never trained on
or scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from trader.ml.features import FeatureSet

HORIZONS_MIN = (5, 15, 30, 60, 240)
DOWN, FLAT, UP = 0, 1, 2
NONE, BOTTOM, TOP = 0, 1, 2
DIRECTION_CLASSES = ("down", "flat", "up")
REVERSAL_CLASSES = ("none", "bottom", "top")
GRID_MINUTES = 5


@dataclass(frozen=True)
class LabelParams:
    taker_fee: float = 0.0005  # Binance USDⓈ-M taker, per side
    slippage: float = 0.0001  # per side
    pivot_bars: int = 6  # k: 30 min either side on the 5m grid
    min_move: float | None = None  # None → the round-trip cost

    @property
    def round_trip(self) -> float:
        return 2 * (self.taker_fee + self.slippage)


def horizon_bars(minutes: int) -> int:
    if minutes % GRID_MINUTES:
        raise ValueError(f"horizon {minutes} min is not a multiple of the {GRID_MINUTES} min grid")
    return minutes // GRID_MINUTES


def _future_ok(fs: FeatureSet, k: int) -> np.ndarray:
    """Row t may read row t+k: same segment and every bar up to t+k real."""
    n = len(fs)
    ok = np.zeros(n, dtype=bool)
    if k >= n:
        return ok
    same = fs.segment[k:] == fs.segment[:-k] if k else np.ones(n, dtype=bool)
    fake = (~fs.real).astype("int64")
    cum = np.r_[0, np.cumsum(fake)]
    clean = (cum[k + 1:] - cum[:n - k]) == 0 if k else fs.real.copy()
    ok[: n - k] = same & clean[: n - k] if k else clean
    return ok


def direction_labels(fs: FeatureSet, horizons_min: tuple[int, ...] = HORIZONS_MIN,
                     p: LabelParams | None = None) -> dict[int, np.ndarray]:
    p = p or LabelParams()
    out: dict[int, np.ndarray] = {}
    logc = np.log(fs.close)
    for m in horizons_min:
        k = horizon_bars(m)
        y = np.full(len(fs), -1, dtype="int64")
        ok = _future_ok(fs, k)
        r = np.full(len(fs), np.nan)
        r[: len(fs) - k] = logc[k:] - logc[: len(fs) - k]
        y[ok] = np.where(r[ok] > p.round_trip, UP, np.where(r[ok] < -p.round_trip, DOWN, FLAT))
        out[m] = y
    return out


def forward_returns(fs: FeatureSet, minutes: int) -> np.ndarray:
    """close[t+h]/close[t] − 1 where known (NaN elsewhere): what a trade held for h earns before costs."""
    k = horizon_bars(minutes)
    out = np.full(len(fs), np.nan)
    ok = _future_ok(fs, k)
    out[: len(fs) - k] = fs.close[k:] / fs.close[: len(fs) - k] - 1.0
    out[~ok] = np.nan
    return out


def reversal_labels(fs: FeatureSet, p: LabelParams | None = None) -> np.ndarray:
    p = p or LabelParams()
    k = p.pivot_bars
    n = len(fs)
    y = np.full(n, -1, dtype="int64")
    if n < 2 * k + 1:
        return y
    move = p.round_trip if p.min_move is None else p.min_move
    lw = sliding_window_view(fs.low, 2 * k + 1)  # row j centred on t = j + k
    hw = sliding_window_view(fs.high, 2 * k + 1)
    t = np.arange(k, n - k)
    low_t, high_t = fs.low[t], fs.high[t]
    is_low = (lw.argmin(axis=1) == k) & (hw[:, k + 1:].max(axis=1) >= low_t * (1 + move))
    is_high = (hw.argmax(axis=1) == k) & (lw[:, k + 1:].min(axis=1) <= high_t * (1 - move))
    lab = np.where(is_low & ~is_high, BOTTOM, np.where(is_high & ~is_low, TOP, NONE))
    back = np.zeros(n, dtype=bool)  # the k bars before t are in the same segment and real
    back[k:] = _future_ok(fs, k)[: n - k]
    ok = back[t] & _future_ok(fs, k)[t]
    y[t[ok]] = lab[ok]
    return y


def known_lag_bars(target: str, p: LabelParams | None = None) -> int:
    """Bars after t at which the label of row t is known: ``dir_<h>`` → h/5, ``reversal`` → k."""
    p = p or LabelParams()
    if target == "reversal":
        return p.pivot_bars
    return horizon_bars(int(target.split("_")[1]))
