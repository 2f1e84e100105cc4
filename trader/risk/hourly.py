"""The correlation rule's input: each pair's closes at full hours over a rolling window, their log returns as
arrays, and the Pearson correlation of two pairs' returns over the hours both have.

A risk book receives one close per pair per hour but is asked for correlations at every entry decision (in a
multi-pair backtest or hyperopt trial, thousands of times between two hourly closes). So the window keeps its
closes in hour order with their log returns kept in step, turned into arrays once per new close
(``HourlyCloses.returns``), and the correlation is a handful of numpy operations on those arrays. This is the one
implementation: the backtest, the screening engine and the live engine all reach it through ``RiskBook``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

import numpy as np


class HourlyCloses:
    """One pair's positive closes keyed by hour (ms // 3,600,000), the newest ``keep`` hours, with the log returns
    between consecutive hours kept in step. Hours normally arrive in order (appended: one return more); a repeated
    hour replaces its close and an older hour is inserted in order (both rebuild the returns); when the window is
    full the oldest hour leaves, whichever was added last, and with it the return that needed it."""

    __slots__ = ("keep", "_hours", "_closes", "_ret_hours", "_rets", "_arrays", "version")

    def __init__(self, keep: int, items: Iterable[tuple[int, float]] = ()) -> None:
        if keep < 1:
            raise ValueError(f"an hourly window keeps at least one close, not {keep}")
        self.keep = keep
        self._hours: list[int] = []
        self._closes: list[float] = []
        self._ret_hours: list[int] = []
        self._rets: list[float] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.version = 0  # changes with every close: a cached correlation of this window is stale
        for hour, close in items:
            self.add(hour, close)

    def add(self, hour: int, close: float) -> None:
        hours, closes = self._hours, self._closes
        if not hours or hour > hours[-1]:
            if hours and hour == hours[-1] + 1 and close > 0 and closes[-1] > 0:
                self._ret_hours.append(hour)
                self._rets.append(math.log(close / closes[-1]))
            hours.append(hour)
            closes.append(close)
        else:
            at = bisect.bisect_left(hours, hour)
            if hours[at] == hour:
                closes[at] = close
            else:
                hours.insert(at, hour)
                closes.insert(at, close)
            self._ret_hours, self._rets = hourly_returns(hours, closes)
        if len(hours) > self.keep:
            del hours[0]
            del closes[0]
            if self._ret_hours and self._ret_hours[0] <= hours[0]:  # its previous hour just left
                del self._ret_hours[0]
                del self._rets[0]
        self._arrays = None
        self.version += 1

    def __len__(self) -> int:
        return len(self._hours)

    def items(self) -> list[tuple[int, float]]:
        return list(zip(self._hours, self._closes, strict=True))

    def returns(self) -> tuple[np.ndarray, np.ndarray]:
        """(hours, log return from the previous hour) as arrays, hours ascending: every hour whose previous hour is
        in the window too (a gap breaks the chain rather than bridging it). Built once per new close."""
        if self._arrays is None:
            self._arrays = (np.array(self._ret_hours, dtype="int64"), np.array(self._rets, dtype="float64"))
        return self._arrays


def hourly_returns(hours: Sequence[int], closes: Sequence[float]) -> tuple[list[int], list[float]]:
    """Log returns between consecutive hours of ascending ``hours``, keyed by the later hour; a non-positive close
    gives no return on either side of it."""
    out_h: list[int] = []
    out_r: list[float] = []
    for j in range(1, len(hours)):
        prev, close = closes[j - 1], closes[j]
        if hours[j] == hours[j - 1] + 1 and prev > 0 and close > 0:
            out_h.append(hours[j])
            out_r.append(math.log(close / prev))
    return out_h, out_r


def returns_correlation(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], min_points: int) -> float:
    """Pearson correlation of two return series (``HourlyCloses.returns``) over the hours both have; NaN with fewer
    than ``min_points`` common hours or a flat series."""
    ha, ra = a
    hb, rb = b
    n = len(ha)
    if n == len(hb) and (n == 0 or (ha[0] == hb[0] and ha[-1] - ha[0] == n - 1 and hb[-1] - hb[0] == n - 1)
                         or np.array_equal(ha, hb)):
        x, y = ra, rb  # the usual case: the same unbroken run of hours on both (ascending, unique: no gap inside)
    else:
        _, ia, ib = np.intersect1d(ha, hb, assume_unique=True, return_indices=True)
        x, y = ra[ia], rb[ib]
    n = len(x)
    if n < max(min_points, 2):
        return math.nan
    xm = x - np.add.reduce(x) / n
    ym = y - np.add.reduce(y) / n
    sxx = float(xm @ xm)
    syy = float(ym @ ym)
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(xm @ ym) / math.sqrt(sxx * syy)))
