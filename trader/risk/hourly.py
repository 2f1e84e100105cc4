"""The correlation rule's input: each pair's closes at full hours over a rolling window, their log returns as
arrays, and the Pearson correlation of two pairs' returns over the hours both have.

A risk book receives one close per pair per hour but is asked for correlations at every entry decision (in a
multi-pair backtest or hyperopt trial, thousands of times between two hourly closes). So the window keeps its
closes in hour order and turns them into return arrays once per new close (``HourlyCloses.returns``), and the
correlation is a handful of numpy operations on those arrays. This is the one implementation: the backtest, the
screening engine and the live engine all reach it through ``RiskBook``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import numpy as np

_NO_HOURS = np.empty(0, dtype="int64")
_NO_RETURNS = np.empty(0, dtype="float64")


class HourlyCloses:
    """One pair's positive closes keyed by hour (ms // 3,600,000), the newest ``keep`` hours. Hours normally arrive
    in order (appended); a repeated hour replaces its close; an older hour is inserted in order, and when the window
    is full the oldest hour leaves, whichever was added last."""

    __slots__ = ("keep", "_hours", "_closes", "_returns", "version")

    def __init__(self, keep: int, items: Iterable[tuple[int, float]] = ()) -> None:
        if keep < 1:
            raise ValueError(f"an hourly window keeps at least one close, not {keep}")
        self.keep = keep
        self._hours: list[int] = []
        self._closes: list[float] = []
        self._returns: tuple[np.ndarray, np.ndarray] | None = None
        self.version = 0  # changes with every close: a cached correlation of this window is stale
        for hour, close in items:
            self.add(hour, close)

    def add(self, hour: int, close: float) -> None:
        hours = self._hours
        if not hours or hour > hours[-1]:
            hours.append(hour)
            self._closes.append(close)
        else:
            at = bisect.bisect_left(hours, hour)
            if hours[at] == hour:
                self._closes[at] = close
            else:
                hours.insert(at, hour)
                self._closes.insert(at, close)
        if len(hours) > self.keep:
            del hours[0]
            del self._closes[0]
        self._returns = None
        self.version += 1

    def __len__(self) -> int:
        return len(self._hours)

    def items(self) -> list[tuple[int, float]]:
        return list(zip(self._hours, self._closes, strict=True))

    def returns(self) -> tuple[np.ndarray, np.ndarray]:
        """(hour, log return from the previous hour) for every hour whose previous hour is in the window too (a gap
        breaks the chain rather than bridging it); hours ascending. Computed once per new close."""
        if self._returns is None:
            self._returns = hourly_returns(self._hours, self._closes)
        return self._returns


def hourly_returns(hours: list[int] | np.ndarray, closes: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log returns between consecutive hours of ascending ``hours``, keyed by the later hour; a non-positive close
    gives no return on either side of it."""
    if len(hours) < 2:
        return _NO_HOURS, _NO_RETURNS
    h = np.asarray(hours, dtype="int64")
    c = np.asarray(closes, dtype="float64")
    ok = (h[1:] == h[:-1] + 1) & (c[1:] > 0) & (c[:-1] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(c[1:] / c[:-1])
    return h[1:][ok], r[ok]


def returns_correlation(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], min_points: int) -> float:
    """Pearson correlation of two return series (``hourly_returns`` pairs) over the hours both have; NaN with fewer
    than ``min_points`` common hours or a flat series."""
    ha, ra = a
    hb, rb = b
    if len(ha) == len(hb) and np.array_equal(ha, hb):  # the usual case: the same hours on both
        x, y = ra, rb
    else:
        _, ia, ib = np.intersect1d(ha, hb, assume_unique=True, return_indices=True)
        x, y = ra[ia], rb[ib]
    if len(x) < max(min_points, 2):
        return math.nan
    xm = x - x.mean()
    ym = y - y.mean()
    sxx = float(xm @ xm)
    syy = float(ym @ ym)
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(xm @ ym) / math.sqrt(sxx * syy)))
