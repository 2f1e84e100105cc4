"""Candles for ML datasets: loaded from the store, holes filled without looking ahead.

Holes in the base candles (exchange maintenance, a missed download) are treated in three tiers:

* up to ``ffill_max`` bars: forward-filled — the last close repeated as a flat bar with zero volume, which is what
  the exchange itself prints when nothing trades;
* up to ``interp_max`` bars: linearly interpolated between the bar before and the bar after the hole. The bar
  after is in the future of every filled bar, so no row inside the hole is ever a sample and no label may end on
  one (``filled`` marks them); rows *after* the hole read the interpolated bars only once both ends are known,
  which is causal;
* longer holes split the data into segments: indicators, sequence windows and labels never span them (the analyzer
  resamples with holes left open, so bars across a long hole simply do not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trader.data.formats import find_file
from trader.data.store import candle_path, load_candles, load_funding
from trader.data.timeframes import timeframe_ms


@dataclass(frozen=True)
class GapPolicy:
    ffill_max: int = 2  # base bars
    interp_max: int = 30


def fill_gaps(df: pd.DataFrame, timeframe: str, policy: GapPolicy | None = None) -> pd.DataFrame:
    """``df`` (store frame, sorted) with short holes filled; column ``filled`` is True on invented bars."""
    policy = policy or GapPolicy()
    step = timeframe_ms(timeframe)
    df = df.reset_index(drop=True)
    ts = df["timestamp"].to_numpy("int64")
    if len(ts) < 2:
        return df.assign(filled=False)
    missing = np.diff(ts) // step - 1
    holes = np.flatnonzero((missing > 0) & (missing <= max(policy.ffill_max, policy.interp_max)))
    if not len(holes):
        return df.assign(filled=False)
    rows = []
    for i in holes:
        k = int(missing[i])
        t = ts[i] + step * np.arange(1, k + 1)
        c0 = float(df.at[i, "close"])
        if k <= policy.ffill_max:
            px = np.full(k, c0)
        else:
            c1 = float(df.at[i + 1, "open"])
            px = c0 + (c1 - c0) * np.arange(1, k + 1) / (k + 1)
        part = pd.DataFrame({"timestamp": t, "open": px, "high": px, "low": px, "close": px})
        if "volume" in df.columns:
            part["volume"] = 0.0
        rows.append(part)
    extra = pd.concat(rows, ignore_index=True).assign(filled=True)
    out = pd.concat([df.assign(filled=False), extra], ignore_index=True)
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def base_timeframe(data_dir: Path, pair: str, preferred: tuple[str, ...] = ("1m", "5m")) -> str:
    """The finest timeframe the store holds for ``pair`` (1m, else 5m: the shared long history is 5m)."""
    for tf in preferred:
        if find_file(candle_path(data_dir, pair, tf).with_suffix("")) is not None:
            return tf
    raise FileNotFoundError(f"no {' or '.join(preferred)} candles for {pair} in {data_dir}")


@dataclass(frozen=True)
class PairData:
    pair: str
    timeframe: str
    candles: pd.DataFrame  # with ``filled``
    funding: pd.DataFrame


def load_pair(data_dir: Path, pair: str, start_ms: int | None = None, end_ms: int | None = None,
              timeframe: str | None = None, policy: GapPolicy | None = None) -> PairData:
    if timeframe:
        tf, candles = timeframe, load_candles(Path(data_dir), pair, timeframe, start_ms=start_ms, end_ms=end_ms)
    else:  # the finest timeframe that covers the range best (the shared history has 1m for a few months only)
        best = None
        for cand in ("1m", "5m"):
            if find_file(candle_path(Path(data_dir), pair, cand).with_suffix("")) is None:
                continue
            df = load_candles(Path(data_dir), pair, cand, start_ms=start_ms, end_ms=end_ms)
            covered = len(df) * timeframe_ms(cand)
            if best is None or covered > best[2] * 1.05:
                best = (cand, df, covered)
        if best is None:
            raise FileNotFoundError(f"no 1m or 5m candles for {pair} in {data_dir}")
        tf, candles = best[0], best[1]
    if candles.empty:
        raise ValueError(f"no {tf} candles for {pair} in the requested range")
    return PairData(pair, tf, fill_gaps(candles, tf, policy), load_funding(Path(data_dir), pair, end_ms=end_ms))
