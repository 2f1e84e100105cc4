"""Building blocks for computing the analysis one closed bar at a time, with results equal to the batch functions.

The live feed used to rerun the whole batch computation over its rolling window on every candle (thousands of bars,
every timeframe, each time). These pieces keep state instead, so a new bar costs O(1):

- ``TaStream``: a TA-Lib stream (``talib.stream``; TA-Lib 0.8's stateful handles, bit-identical to the batch
  function continued over the same series — tests/analysis/test_incremental.py checks it), opened as soon as the
  series holds the history TA-Lib asks for and NaN until then, exactly where the batch output is NaN;
- ``TfAggregator``: feed bars → complete, epoch-aligned higher-timeframe bars with the rules and the arithmetic of
  ``trader.strategy.multitf.to_tf`` (volume summed by ``np.add.reduceat``, whose rounding a Python sum does not
  reproduce);
- ``HeldValue``: what ``latest_closed_index`` / ``held`` / ``fresh`` read at a base bar (the latest closed
  higher-timeframe bar, unknown once a whole timeframe old);
- ``RollingRank``: ``features.rolling_percentile`` for the newest value;
- ``SuperTrendStep``: ``indicators.supertrend``'s recursion, one bar at a time;
- ``RegimeStream``: the analyzer's regime label (``regime.regime_series`` on ``features.timeframe_features`` of
  ``indicators.indicator_set``) for each new bar of the regime timeframe, computing only the inputs the label reads.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import talib
import talib.stream as tas

from trader.analysis.features import FeatureParams
from trader.analysis.indicators import IndicatorParams
from trader.analysis.regime import UNKNOWN, RegimeThresholds

NAN = math.nan


class TaStream:
    """One TA-Lib stream over a growing series of ``n_in`` inputs and ``n_out`` outputs.

    ``update(*x)`` appends one bar and returns the batch function's value at it (a float, or a tuple when
    ``n_out > 1``). Until the series is long enough for TA-Lib to open the stream, the inputs are buffered and the
    answer is NaN — the batch function's warm-up NaN at the same bars."""

    __slots__ = ("_open", "_n_out", "_hist", "_st", "_nan")

    def __init__(self, open_fn: Callable[..., Any], n_in: int = 1, n_out: int = 1) -> None:
        self._open = open_fn
        self._n_out = n_out
        self._hist: list[list[float]] | None = [[] for _ in range(n_in)]
        self._st: Any = None
        self._nan: Any = NAN if n_out == 1 else (NAN,) * n_out

    def update(self, *x: float) -> Any:
        st = self._st
        if st is not None:
            return st.update(*x)
        hist = self._hist
        assert hist is not None
        for h, v in zip(hist, x, strict=True):
            h.append(v)
        try:
            st = self._open(*(np.array(h, dtype="float64") for h in hist))
        except talib.InsufficientHistory:  # only that: any other error is a bug to see
            return self._nan
        self._st, self._hist = st, None
        return st.value

    @property
    def value(self) -> Any:
        return self._st.value if self._st is not None else self._nan



def sma(period: int) -> TaStream:
    return TaStream(lambda x: tas.SMA(x, period))


def stddev(period: int, nbdev: float = 1.0) -> TaStream:
    return TaStream(lambda x: tas.STDDEV(x, period, nbdev))


def ema(period: int) -> TaStream:
    return TaStream(lambda x: tas.EMA(x, period))


def rsi(period: int) -> TaStream:
    return TaStream(lambda x: tas.RSI(x, period))


def rolling_max(period: int) -> TaStream:
    return TaStream(lambda x: tas.MAX(x, period))


def rolling_min(period: int) -> TaStream:
    return TaStream(lambda x: tas.MIN(x, period))


def atr(period: int) -> TaStream:
    return TaStream(lambda h, lo, c: tas.ATR(h, lo, c, period), n_in=3)


def adx(period: int) -> TaStream:
    return TaStream(lambda h, lo, c: tas.ADX(h, lo, c, period), n_in=3)


def bbands(period: int, dev: float) -> TaStream:
    return TaStream(lambda x: tas.BBANDS(x, period, dev, dev, 0), n_out=3)



@dataclass(frozen=True)
class TfBar:
    ts_ms: int  # open time
    close_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class TfAggregator:
    """Feed bars (``feed_ms`` long, oldest first, unique) → bars of ``tf_ms``: a bucket is emitted when its last
    feed bar arrives and only if every one of its feed bars did (``to_tf`` drops incomplete buckets)."""

    __slots__ = ("tf_ms", "need", "_bucket", "_o", "_h", "_l", "_c", "_v", "_n")

    def __init__(self, tf_ms: int, feed_ms: int) -> None:
        if tf_ms < feed_ms or tf_ms % feed_ms:
            raise ValueError(f"cannot build {tf_ms} ms bars from {feed_ms} ms bars")
        self.tf_ms = tf_ms
        self.need = tf_ms // feed_ms
        self._bucket: int | None = None
        self._o = self._c = NAN
        self._h: list[float] = []
        self._l: list[float] = []
        self._v: list[float] = []
        self._n = 0

    def add(self, ts_ms: int, o: float, h: float, lo: float, c: float, v: float) -> TfBar | None:
        if self.need == 1:
            return TfBar(ts_ms, ts_ms + self.tf_ms, o, h, lo, c, v)
        bucket = ts_ms - ts_ms % self.tf_ms
        if bucket != self._bucket:
            self._bucket, self._o = bucket, o
            self._h, self._l, self._v = [h], [lo], [v]
        else:
            self._h.append(h)
            self._l.append(lo)
            self._v.append(v)
        self._c = c
        if len(self._v) != self.need:
            return None
        vol = float(np.add.reduceat(np.array(self._v, dtype="float64"), [0])[0])
        bar = TfBar(bucket, bucket + self.tf_ms, self._o, max(self._h), min(self._l), c, vol)
        self._bucket = None
        return bar


class HeldValue:
    """The values of the latest closed bar of one timeframe as a base bar reads them: ``held(at)`` until a whole
    timeframe has passed since it closed (then unknown: ``latest_closed_index`` calls it stale), ``fresh(at)``
    only on the base bar whose close is the bar's close."""

    __slots__ = ("tf_ms", "close_ms", "values")

    def __init__(self, tf_ms: int) -> None:
        self.tf_ms = tf_ms
        self.close_ms: int | None = None
        self.values: Any = None

    def set(self, close_ms: int, values: Any) -> None:
        self.close_ms, self.values = close_ms, values

    def held(self, at_close_ms: int) -> Any:
        """The values, or None when no bar is known at ``at_close_ms``."""
        c = self.close_ms
        if c is None or at_close_ms - c >= self.tf_ms or c > at_close_ms:
            return None
        return self.values

    def is_fresh(self, at_close_ms: int) -> bool:
        return self.close_ms == at_close_ms


class RollingRank:
    """``rolling_percentile`` at the newest value: the share of the last ``window`` values at or below it; NaN
    until the window is full or while it holds a NaN. The window is also kept sorted, so the count is a bisection
    rather than a pass over the window."""

    __slots__ = ("window", "_w", "_sorted", "_nans")

    def __init__(self, window: int) -> None:
        self.window = window
        self._w: deque[float] = deque()
        self._sorted: list[float] = []
        self._nans = 0

    def update(self, x: float) -> float:
        w = self._w
        if len(w) == self.window:
            old = w.popleft()
            if old != old:
                self._nans -= 1
            else:
                del self._sorted[bisect_left(self._sorted, old)]
        w.append(x)
        if x != x:
            self._nans += 1
        else:
            insort(self._sorted, x)
        if len(w) < self.window or self._nans:
            return NAN
        return bisect_right(self._sorted, x) / self.window


class SuperTrendStep:
    """``indicators.supertrend`` one bar at a time (same float operations, same order): returns (line, direction),
    NaN while its ATR is warming up."""

    __slots__ = ("m", "_atr", "_started", "_up", "_dn", "_trend", "_prev_c")

    def __init__(self, period: int, multiplier: float) -> None:
        self.m = multiplier
        self._atr = atr(period)
        self._started = False
        self._up = self._dn = self._trend = self._prev_c = NAN

    def update(self, h: float, lo: float, c: float) -> tuple[float, float]:
        a = self._atr.update(h, lo, c)
        if a != a:  # the batch loop starts at the first valid ATR
            self._prev_c = c
            return NAN, NAN
        hl2 = (h + lo) / 2.0
        u = hl2 - self.m * a
        d = hl2 + self.m * a
        if not self._started:
            self._started = True
            self._up, self._dn, self._trend, self._prev_c = u, d, 1.0, c
            return u, 1.0
        up, dn, trend, prev_c = self._up, self._dn, self._trend, self._prev_c
        if prev_c > up:
            u = max(u, up)
        if prev_c < dn:
            d = min(d, dn)
        if trend < 0 and c > dn:
            trend = 1.0
        elif trend > 0 and c < up:
            trend = -1.0
        self._up, self._dn, self._trend, self._prev_c = u, d, trend, c
        return (u if trend > 0 else d), trend


def _div(x: float, y: float) -> float:
    """x / y as numpy divides arrays (inf or NaN on a zero divisor, never an exception)."""
    if y != 0 or x != x or y != y:
        return x / y if y != 0 else NAN
    return NAN if x == 0 else math.copysign(math.inf, x) * math.copysign(1.0, y)


def _sign(x: float) -> float:
    if x != x:
        return NAN
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


class RegimeStream:
    """The regime label of each new bar of the regime timeframe, equal to
    ``regime_series({"adx": ind["adx"], **timeframe_features(ind, ...)})`` on ``indicator_set`` of the same bars
    (what ``analyze_timeframe`` gives), computing only what the label reads: ADX, the trend votes (EMA fast/slow,
    SuperTrend), the ATR and Bollinger-width percentiles and the range breakout."""

    def __init__(self, ind: IndicatorParams | None = None, feat: FeatureParams | None = None,
                 thresholds: RegimeThresholds | None = None) -> None:
        ip = ind or IndicatorParams()
        fp = feat or FeatureParams()
        self.t = thresholds or RegimeThresholds()
        self._adx = adx(ip.adx_period)
        self._ema_fast, self._ema_slow = ema(ip.ema_fast), ema(ip.ema_slow)
        self._st = SuperTrendStep(*ip.supertrend)
        self._atr = atr(ip.atr_period)
        self._bb = bbands(*ip.bollinger)
        self._atr_rank = RollingRank(fp.percentile_window)
        self._bb_rank = RollingRank(fp.percentile_window)
        self._max, self._min = rolling_max(fp.breakout_window), rolling_min(fp.breakout_window)
        self._max_width = fp.breakout_max_width_atr
        self._prev_max = self._prev_min = self._prev_atr = NAN
        self.count = 0  # bars seen

    def update(self, h: float, lo: float, c: float) -> str:
        self.count += 1
        adx_ = self._adx.update(h, lo, c)
        ef, es = self._ema_fast.update(c), self._ema_slow.update(c)
        _line, st_dir = self._st.update(h, lo, c)
        a = self._atr.update(h, lo, c)
        upper, mid, lower = self._bb.update(c)
        atr_pct = self._atr_rank.update(_div(a, c))
        bb_pct = self._bb_rank.update(_div(upper - lower, mid))
        # Range breakout: the range of the window *before* this bar, its width in the ATR of the bar before.
        rh, rl, pa = self._prev_max, self._prev_min, self._prev_atr
        self._prev_max, self._prev_min, self._prev_atr = self._max.update(h), self._min.update(lo), a
        if rh != rh or rl != rl or pa != pa:
            breakout = NAN
        else:
            width = _div(rh - rl, pa)
            tight = width <= self._max_width
            breakout = NAN if width != width else (1.0 if tight and c > rh else (-1.0 if tight and c < rl else 0.0))
        # Trend direction: all three votes must agree (NaN while any is unknown).
        votes = (_sign(ef - es), _sign(c - es), st_dir)
        if any(v != v for v in votes):
            trend = NAN
        else:
            score = (votes[0] + votes[1] + votes[2]) / 3.0
            trend = 1.0 if score >= 1.0 else (-1.0 if score <= -1.0 else 0.0)
        t = self.t
        if adx_ != adx_ or atr_pct != atr_pct:
            return UNKNOWN
        if breakout == breakout and breakout != 0:
            return "breakout"
        if atr_pct >= t.volatile_atr_pct or bb_pct >= t.volatile_bb_pct:
            return "volatile"
        if adx_ >= t.trend_adx and trend == trend and trend != 0:
            return "trending"
        return "ranging"
