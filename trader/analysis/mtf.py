"""Several timeframes on one clock: which closed higher-timeframe bar is known at each base bar, and whether the
timeframes' trends agree.

A 1h bar that opens at 10:00 is known from 11:00, i.e. at the close of the 1m bar that opens at 10:59. Reading it
on any earlier minute would be lookahead, so values are mapped by close time, never by open time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def latest_closed_index(base_close_ms: Array, tf_close_ms: Array, tf_ms: int) -> Array:
    """For each base bar, the index of the latest higher-timeframe bar closed by the base bar's close, or −1.

    −1 also when that bar is stale (closed a whole timeframe or more before): the resampler drops incomplete
    buckets, so after a hole the last complete bar can be old, and carrying it forward would present old news as
    current."""
    idx = np.searchsorted(tf_close_ms, base_close_ms, side="right") - 1
    ok = idx >= 0
    age = np.where(ok, base_close_ms - tf_close_ms[np.maximum(idx, 0)], 0)
    idx[~ok | (age >= tf_ms)] = -1
    return idx


def align(values: Array, index: Array) -> Array:
    """``values`` (one per higher-timeframe bar) read through ``latest_closed_index``: NaN where −1."""
    out = np.full(len(index), np.nan)
    ok = index >= 0
    out[ok] = values[index[ok]]
    return out


@dataclass(frozen=True)
class Alignment:
    """Agreement of the trend directions of several timeframes (ordered short → long) at each base bar.

    score: mean direction (−1..1) of the timeframes that are known; aligned: +1/−1 when every timeframe is known
    and points the same way, else 0; divergence: 1 when the shortest and the longest timeframe point opposite
    ways (a counter-trend move), else 0; known: how many timeframes have a value."""

    score: Array
    aligned: Array
    divergence: Array
    known: Array


def trend_alignment(directions: list[Array]) -> Alignment:
    d = np.vstack(directions)
    known = (~np.isnan(d)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        score = np.where(known > 0, np.nansum(d, axis=0) / np.maximum(known, 1), np.nan)
    full = known == len(directions)
    aligned = np.where(full & (score >= 1.0), 1.0, np.where(full & (score <= -1.0), -1.0, 0.0))
    aligned[known == 0] = np.nan
    short, long_ = d[0], d[-1]
    div = np.where(np.isnan(short) | np.isnan(long_), np.nan, (short * long_ < 0).astype(float))
    return Alignment(score, aligned, div, known.astype(float))
