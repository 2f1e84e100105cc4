"""Turning stored candles into what one backtest segment needs: aligned bars, mark ratio, funding, gap report.

Rules: higher timeframes come from a native file when present, else from the 1m base (incomplete bars dropped);
pairs are aligned on the timestamps they all have; a hole in any pair splits the run into segments, each run on
its own (indicators restart), and every hole is listed in the result. Nothing is filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.broker import PairData
from trader.data.store import Gap, candle_path, find_gaps, funding_path, load_candles, load_funding, resample
from trader.data.timeframes import timeframe_ms

_MARK_TIMEFRAMES = ("1m", "5m", "15m", "1h", "8h")


@dataclass(frozen=True)
class PairGap:
    pair: str
    start_ms: int
    end_ms: int
    missing: int


@dataclass(frozen=True)
class Segment:
    start_ms: int  # first bar open
    end_ms: int  # last bar open
    bars: int
    skipped: bool = False  # too short to warm the indicators up


def load_pair_candles(data_dir: Path, pair: str, timeframe: str, start_ms: int | None, end_ms: int | None,
                      ) -> pd.DataFrame:
    """Candles of ``timeframe`` for [start, end): the native file if any, else resampled from 1m."""
    if candle_path(data_dir, pair, timeframe).exists():
        return load_candles(data_dir, pair, timeframe, "futures", start_ms, end_ms)
    if timeframe == "1m":
        raise FileNotFoundError(f"no 1m futures candles for {pair} in {data_dir}")
    base = load_candles(data_dir, pair, "1m", "futures", start_ms, end_ms)
    return resample(base, "1m", timeframe)


def load_mark(data_dir: Path, pair: str, timeframe: str, start_ms: int | None, end_ms: int | None,
              ) -> tuple[pd.DataFrame, str] | None:
    """The finest mark-price candles available at or above ``timeframe`` (plus one bar of look-back)."""
    tf_ms = timeframe_ms(timeframe)
    for tf in _MARK_TIMEFRAMES:
        if timeframe_ms(tf) < tf_ms and tf != "1m":
            continue
        if candle_path(data_dir, pair, tf, "mark").exists():
            lookback = None if start_ms is None else start_ms - timeframe_ms(tf)
            return load_candles(data_dir, pair, tf, "mark", lookback, end_ms), tf
    return None


def mark_ratio(bar_ts: np.ndarray, bar_open: np.ndarray, mark: pd.DataFrame | None, mark_tf: str | None,
               ) -> np.ndarray:
    """mark/last at the latest instant both are known: a mark candle's open over the last-price bar open then.

    Carried forward for at most two mark candles; without mark data the ratio is 1 (mark ≈ last).
    """
    ratio = np.ones(len(bar_ts))
    if mark is None or mark.empty or not len(bar_ts):
        return ratio
    m_ts = mark["timestamp"].to_numpy()
    pos = np.searchsorted(bar_ts, m_ts)
    ok = (pos < len(bar_ts)) & (bar_ts[np.minimum(pos, len(bar_ts) - 1)] == m_ts)
    if not ok.any():
        return ratio
    known_ts = m_ts[ok]
    known = mark["open"].to_numpy()[ok] / bar_open[pos[ok]]
    j = np.searchsorted(known_ts, bar_ts, side="right") - 1
    fresh = (j >= 0) & (bar_ts - known_ts[np.maximum(j, 0)] <= 2 * timeframe_ms(mark_tf))
    ratio[fresh] = known[j[fresh]]
    return ratio


def funding_arrays(data_dir: Path, pair: str, start_ms: int, end_ms: int, mark: pd.DataFrame | None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settlement times, rates and the mark at each settlement (NaN when no mark candle opens exactly then)."""
    f = load_funding(data_dir, pair, start_ms, end_ms + 1)
    ts = f["timestamp"].to_numpy(dtype="int64")
    rate = f["funding_rate"].to_numpy(dtype="float64")
    fmark = np.full(len(ts), np.nan)
    if mark is not None and not mark.empty and len(ts):
        m_ts = mark["timestamp"].to_numpy()
        k = np.searchsorted(m_ts, ts)
        hit = (k < len(m_ts)) & (m_ts[np.minimum(k, len(m_ts) - 1)] == ts)
        fmark[hit] = mark["open"].to_numpy()[k[hit]]
    return ts, rate, fmark


def align(frames: dict[str, pd.DataFrame]) -> np.ndarray:
    """Timestamps every pair has."""
    common: np.ndarray | None = None
    for df in frames.values():
        ts = df["timestamp"].to_numpy(dtype="int64")
        common = ts if common is None else np.intersect1d(common, ts, assume_unique=True)
    return common if common is not None else np.empty(0, dtype="int64")


def pair_gaps(frames: dict[str, pd.DataFrame], timeframe: str) -> list[PairGap]:
    out = []
    for pair, df in frames.items():
        out += [PairGap(pair, g.start_ms, g.end_ms, g.missing) for g in find_gaps(df["timestamp"], timeframe)]
    return out


def segments(common_ts: np.ndarray, timeframe: str) -> list[tuple[int, int]]:
    """Index ranges [a, b) of contiguous runs of the common timestamps."""
    if not len(common_ts):
        return []
    gaps: list[Gap] = find_gaps(common_ts, timeframe)
    cuts = [0] + [int(np.searchsorted(common_ts, g.end_ms)) for g in gaps] + [len(common_ts)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def pair_arrays(df: pd.DataFrame, ratio: np.ndarray, funding: tuple[np.ndarray, np.ndarray, np.ndarray],
                ) -> PairData:
    return PairData(
        ts_ms=df["timestamp"].to_numpy(dtype="int64"),
        open=df["open"].to_numpy(dtype="float64"),
        high=df["high"].to_numpy(dtype="float64"),
        low=df["low"].to_numpy(dtype="float64"),
        close=df["close"].to_numpy(dtype="float64"),
        mark_ratio=ratio,
        funding_ms=funding[0],
        funding_rate=funding[1],
        funding_mark=funding[2],
    )


def funding_path_exists(data_dir: Path, pair: str) -> bool:
    return funding_path(data_dir, pair).exists()


def load_inputs(request: Any, pairs: Sequence[str], data_dir: Path
                ) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[pd.DataFrame, str] | None], list[str]]:
    """Candles (the request's own or the store's), mark candles and the assumptions they imply, per pair: what the
    Backtrader runner and the screening engine both read (their parity starts from the same inputs)."""
    frames: dict[str, pd.DataFrame] = {}
    marks: dict[str, tuple[pd.DataFrame, str] | None] = {}
    assumptions: list[str] = []
    tf = request.timeframe
    for pair in pairs:
        if request.candles is not None:
            df = request.candles[pair]
            df = df[(df["timestamp"] >= (request.start_ms or -2**62)) & (df["timestamp"] < (request.end_ms or 2**62))]
            frames[pair] = df.reset_index(drop=True)
        else:
            frames[pair] = load_pair_candles(data_dir, pair, tf, request.start_ms, request.end_ms)
        marks[pair] = load_mark(data_dir, pair, tf, request.start_ms, request.end_ms) if request.use_mark else None
        if marks[pair] is None:
            assumptions.append(f"{pair}: no mark-price candles, mark taken equal to last price")
        if request.use_funding and not funding_path_exists(data_dir, pair):
            assumptions.append(f"{pair}: no funding file, funding not charged")
    return frames, marks, assumptions
