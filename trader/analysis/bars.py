"""Candle arrays the analysis works on, from whatever the caller holds (a store frame, strategy ``Candles``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trader.data.store import resample
from trader.data.timeframes import timeframe_ms


@dataclass(frozen=True)
class Bars:
    """Closed candles of one timeframe. ``ts_ms`` is the open time (Binance's convention); every array is float64
    and C-contiguous because TA-Lib refuses anything else."""

    timeframe: str
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def close_ms(self) -> np.ndarray:
        """When each bar's values become known: its open time plus one timeframe."""
        return self.ts_ms + timeframe_ms(self.timeframe)

    def head(self, n: int) -> Bars:
        """The first ``n`` bars: what was known at the close of bar ``n - 1`` (the lookahead tests cut with it)."""
        return Bars(self.timeframe, *(a[:n] for a in (self.ts_ms, self.open, self.high, self.low, self.close,
                                                      self.volume)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": self.ts_ms, "open": self.open, "high": self.high, "low": self.low,
                             "close": self.close, "volume": self.volume})


def _f64(values: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype="float64"))


def to_bars(data: Any, timeframe: str = "1m") -> Bars:
    """A ``Bars`` from a store frame (``timestamp``, ``open`` … ``volume``) or anything with ``ts_ms``/``open`` …
    attributes (``trader.strategy.base.Candles``). A frame without volume (mark candles) gets NaN volume, not 0:
    a missing figure must not read as "no trading"."""
    if isinstance(data, Bars):
        return data
    if isinstance(data, pd.DataFrame):
        vol = data["volume"] if "volume" in data.columns else np.full(len(data), np.nan)
        return Bars(timeframe, np.asarray(data["timestamp"], dtype="int64"), _f64(data["open"]), _f64(data["high"]),
                    _f64(data["low"]), _f64(data["close"]), _f64(vol))
    return Bars(timeframe, np.asarray(data.ts_ms, dtype="int64"), _f64(data.open), _f64(data.high), _f64(data.low),
                _f64(data.close), _f64(data.volume))


def closed_only(bars: Bars, now_ms: int | None) -> Bars:
    """Drop bars whose close time is after ``now_ms`` (a live feed's still-forming candle)."""
    if now_ms is None or not len(bars):
        return bars
    n = int(np.searchsorted(bars.close_ms, now_ms, side="right"))
    return bars.head(n)


def resample_bars(base: Bars, timeframe: str) -> Bars:
    """Aggregate with the store's epoch-aligned boundaries; incomplete buckets are dropped there, so a bar exists
    only when all its minutes do (a partial bar would be an invented candle)."""
    if timeframe == base.timeframe:
        return base
    return to_bars(resample(base.frame(), base.timeframe, timeframe), timeframe)
