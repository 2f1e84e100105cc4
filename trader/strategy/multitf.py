"""Several timeframes inside one ``compute_indicators`` call, causally.

A strategy receives the candles of its feed (the base timeframe: 1m or 5m in practice). The timeframes it also
reads (15m, 1h, 4h) are built here from those candles with the store's epoch-aligned boundaries — a bucket with a
missing minute is dropped, never invented (the rule of ``trader.data.store.resample`` and of the live feed's
``BarAggregator``) — and their values reach the base bars by *close time* (``trader.analysis.mtf``): a 1h bar that
opens at 10:00 is read from the base bar that closes at 11:00 on, never before.

Everything is numpy; nothing here looks at a later bar, so a rolling live window and a whole backtest series give
the same value at the same bar once the window holds the warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader.analysis.mtf import latest_closed_index
from trader.data.timeframes import timeframe_ms
from trader.strategy.base import Candles

Array = np.ndarray


class TimeframeError(ValueError):
    """A timeframe the strategy needs cannot be built from the feed it was given."""


@dataclass(frozen=True)
class TfBars:
    """Closed bars of one timeframe; ``ts_ms`` is the open time, ``close_ms`` when the bar became known."""

    tf: str
    tf_ms: int
    ts_ms: Array
    open: Array
    high: Array
    low: Array
    close: Array
    volume: Array

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def close_ms(self) -> Array:
        return self.ts_ms + self.tf_ms


def base_ms(ts_ms: Array) -> int | None:
    """The feed's bar length: the smallest step between consecutive bars (holes only make steps longer)."""
    if len(ts_ms) < 2:
        return None
    step = int(np.min(np.diff(np.asarray(ts_ms, dtype="int64"))))
    return step if step > 0 else None


def check_timeframes(needed: dict[str, str], feed_ms: int, who: str) -> None:
    """Raise ``TimeframeError`` naming each timeframe (role → timeframe) finer than, or not a multiple of, the feed."""
    bad = []
    for role, tf in needed.items():
        t = timeframe_ms(tf)
        if t < feed_ms or t % feed_ms:
            bad.append(f"{role} {tf}")
    if bad:
        feed = f"{feed_ms // 60_000}m" if feed_ms % 3_600_000 else f"{feed_ms // 3_600_000}h"
        raise TimeframeError(f"{who}: cannot build {', '.join(bad)} from {feed} candles (the feed's timeframe); "
                             f"run it on a timeframe that divides every one of them, e.g. 1m or 5m")


def to_tf(c: Candles, feed_ms: int, tf: str) -> TfBars:
    """``c`` resampled to ``tf`` (complete, epoch-aligned buckets only)."""
    t = timeframe_ms(tf)
    ts = np.asarray(c.ts_ms, dtype="int64")

    def f64(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype="float64")

    if t == feed_ms:
        return TfBars(tf, t, ts, f64(c.open), f64(c.high), f64(c.low), f64(c.close), f64(c.volume))
    need = t // feed_ms
    if not len(ts):
        e = np.empty(0)
        return TfBars(tf, t, ts, e, e, e, e, e)
    bucket = ts - ts % t
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, len(ts)])
    ends = starts + counts - 1
    # Timestamps are unique and sorted, so `need` bars in one bucket are exactly its consecutive minutes.
    ok = counts == need
    s, e_ = starts[ok], ends[ok]
    hi = np.maximum.reduceat(c.high, starts)[ok] if len(starts) else np.empty(0)
    lo = np.minimum.reduceat(c.low, starts)[ok] if len(starts) else np.empty(0)
    vol = np.add.reduceat(c.volume, starts)[ok] if len(starts) else np.empty(0)
    return TfBars(tf, t, bucket[s], f64(c.open[s]), f64(hi), f64(lo), f64(c.close[e_]), f64(vol))


def index_on_base(base_close_ms: Array, bars: TfBars) -> Array:
    """For each base bar, the latest ``bars`` index closed by then (−1: none yet, or stale after a hole)."""
    if not len(bars):
        return np.full(len(base_close_ms), -1, dtype="int64")
    return latest_closed_index(base_close_ms, bars.close_ms, bars.tf_ms)


def held(values: Array, idx: Array) -> Array:
    """Values of the latest closed bar, held until the next one closes (NaN where unknown)."""
    out = np.full(len(idx), np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def fresh(values: Array, idx: Array, base_close_ms: Array, bars: TfBars, fill: float = 0.0) -> Array:
    """Values only on the base bar at whose close the timeframe bar closed (an event, not a state): a signal of a
    15m bar fires once, on the 5m bar that completes it."""
    out = np.full(len(idx), fill)
    if not len(bars):
        return out
    ok = idx >= 0
    just = np.zeros(len(idx), dtype=bool)
    just[ok] = bars.close_ms[idx[ok]] == base_close_ms[ok]
    out[just] = values[idx[just]]
    return out
