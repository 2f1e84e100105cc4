"""A lean Backtrader feed whose lines are filled straight from numpy arrays.

Backtrader's PandasData preload walks the frame row by row and was most of the run time on 1M bars
(stack-notes.md). Here ``preload`` hands each line a ready ``array('d')``; indicators computed beforehand (TA-Lib,
float64) become extra lines, so strategies read ``data.rsi[0]`` exactly as they would read ``data.close[0]``.
Without preload (``cerebro.run(preload=False)``) the feed delivers one bar per ``_load`` like a live feed does.

Backtrader also copies every line of every bar into ``tick_<line>`` attributes (for its own BackBroker's intrabar
fills and for resampling); the futures broker reads the lines, so this feed skips those copies — they were ~18 % of
a reference-strategy run (profile in notes/16-13-speed.md). Use it with ``FuturesBroker``, not Backtrader's broker.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping

import backtrader as bt
import numpy as np

# Backtrader's float day number of 1970-01-01T00:00Z.
_EPOCH_DAYS = 719163.0
_MS_PER_DAY = 86_400_000.0
_BASE = ("open", "high", "low", "close", "volume")

_CLASSES: dict[tuple[str, ...], type] = {}


def ms_to_bt(ts_ms: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ms, dtype="float64") / _MS_PER_DAY + _EPOCH_DAYS


def ms_to_bt_one(ts_ms: int) -> float:
    """``ms_to_bt`` of one value (the same IEEE operations, so the same number), without an array."""
    return float(ts_ms) / _MS_PER_DAY + _EPOCH_DAYS


def feed_class(extra_lines: tuple[str, ...]) -> type:
    """A NumpyFeed subclass with ``extra_lines`` declared (Backtrader wants lines declared on the class)."""
    key = tuple(extra_lines)
    cls = _CLASSES.get(key)
    if cls is None:
        bad = [n for n in key if not n.isidentifier() or n in _BASE or n in ("datetime", "openinterest")]
        if bad:
            raise ValueError(f"bad indicator line names: {bad}")
        cls = type(f"NumpyFeed_{len(_CLASSES)}", (NumpyFeed,), {"lines": key})
        _CLASSES[key] = cls
    return cls


class NumpyFeed(bt.feed.DataBase):
    params = (("arrays", None),)  # name -> float64 array, all the same length; "datetime" in Backtrader days

    _unbounded: bool | None = None

    def start(self) -> None:
        super().start()
        self._unbounded = None
        self._i = 0
        self._n = len(self.p.arrays["datetime"])

    def _tick_fill(self, force: bool = False) -> None:
        pass

    def advance(self, size: int = 1, datamaster: bt.DataBase | None = None, ticks: bool = True) -> None:
        """``AbstractDataBase.advance`` without the tick copies, moving the lines' indexes in one loop: a preloaded
        line is an unbounded buffer whose index is a plain counter (Backtrader calls this for every bar of every
        feed; one method call per line per bar was a visible share of a million-bar run)."""
        lines = self.lines
        if self._unbounded is None:
            self._unbounded = all(lb.mode == lb.UnBounded for lb in lines.lines)
        if self._unbounded:
            for lb in lines.lines:
                lb._idx += size
                lb.lencount += size
        else:
            lines.advance(size)
        if datamaster is not None:
            if len(self) > self.buflen():
                self.rewind()
                lines.forward()
                return
            if lines.datetime[0] > datamaster.lines.datetime[0]:
                lines.rewind()

    def _tick_nullify(self) -> None:
        pass

    def advance_peek(self) -> float:
        """The next bar's time (``inf`` after the last): Backtrader's clock asks every feed every bar."""
        dt = self.lines.datetime
        if self._unbounded:
            return dt.array[dt._idx + 1] if dt.lencount < len(dt.array) - dt.extension else math.inf
        return super().advance_peek()

    def preload(self) -> None:
        arrays: Mapping[str, np.ndarray] = self.p.arrays
        n = self._n
        for alias in self.lines.getlinealiases():
            src = arrays.get(alias)
            buf = array("d")
            if src is None:
                buf.frombytes(np.full(n, np.nan).tobytes())
            else:
                buf.frombytes(np.ascontiguousarray(src, dtype="float64").tobytes())
            line = getattr(self.lines, alias)
            line.array = buf
        self._i = n
        self.home()

    def _load(self) -> bool:
        i = self._i
        if i >= self._n:
            return False
        arrays = self.p.arrays
        for alias in self.lines.getlinealiases():
            src = arrays.get(alias)
            getattr(self.lines, alias)[0] = float(src[i]) if src is not None else float("nan")
        self._i = i + 1
        return True


def make_feed(
    name: str,
    ts_ms: np.ndarray,
    ohlcv: Mapping[str, np.ndarray],
    indicators: Mapping[str, np.ndarray] | None = None,
    compression_minutes: int = 1,
) -> NumpyFeed:
    """Build the feed for one pair: OHLCV plus indicator lines, timestamps in UTC milliseconds."""
    indicators = dict(indicators or {})
    arrays = {"datetime": ms_to_bt(ts_ms), "openinterest": np.zeros(len(ts_ms))}
    for k in _BASE:
        arrays[k] = np.asarray(ohlcv[k], dtype="float64") if k in ohlcv else np.zeros(len(ts_ms))
    for k, v in indicators.items():
        if len(v) != len(ts_ms):
            raise ValueError(f"indicator {k} has {len(v)} values for {len(ts_ms)} bars")
        arrays[k] = np.asarray(v, dtype="float64")
    cls = feed_class(tuple(indicators))
    return cls(arrays=arrays, name=name, timeframe=bt.TimeFrame.Minutes, compression=compression_minutes)
