"""What /signals shows of a running managed strategy (oscillation, breakout, trend alone, or the master): per pair
readiness, the last graded signal, the open position, the model's newest prediction and the chart patterns
completed recently.

Everything here reads the Backtrader lines the strategy already holds and runs between Backtrader's passes
 (``LiveEngine.strategy_view``), only when someone asks: the pattern scan (``trader.analysis.patterns`` on the
15m/1h/4h bars built from the feed's bars, the rule of ``multitf.to_tf``) costs a few milliseconds per pair.
A detection is listed with its completion bar — the close of the last bar its pivots used — so "recent" means
"became known recently"; nothing after that bar was read to find it.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt
import numpy as np

from trader.analysis.patterns import detect_patterns
from trader.data.timeframes import timeframe_ms
from trader.strategy.base import Candles
from trader.strategy.multitf import to_tf

PATTERN_TIMEFRAMES = ("15m", "1h", "4h")
PATTERN_BARS = 160  # bars of each pattern timeframe scanned (pivots, ATR warm-up and a few patterns' length)
RECENT_BARS = 12  # a pattern is listed for this many bars of its timeframe after its completion bar
MAX_PATTERNS = 5
_EPOCH_DAYS = 719163.0  # Backtrader's date number of 1970-01-01
_MS_PER_DAY = 86_400_000.0


def feed_candles(d: bt.DataBase, bars: int) -> Candles:
    """The last ``bars`` bars of a Backtrader data as ``Candles`` (open times in UTC ms)."""
    n = min(len(d), bars)
    if n <= 0:
        e = np.empty(0)
        return Candles(np.empty(0, dtype="int64"), e, e, e, e, e)

    def arr(line: Any) -> np.ndarray:
        return np.asarray(line.get(size=n), dtype="float64")

    ts = np.round((arr(d.datetime) - _EPOCH_DAYS) * _MS_PER_DAY).astype("int64")
    return Candles(ts, arr(d.open), arr(d.high), arr(d.low), arr(d.close), arr(d.volume))


def recent_patterns(d: bt.DataBase, feed_ms: int, *, timeframes: tuple[str, ...] = PATTERN_TIMEFRAMES,
                    recent_bars: int = RECENT_BARS, limit: int = MAX_PATTERNS) -> list[dict[str, Any]]:
    """Patterns on ``timeframes`` whose completion bar closed within ``recent_bars`` bars of that timeframe before
    the newest feed bar's close, newest first: timeframe, kind, direction (+1/−1/0), completion_ms, level."""
    usable = [tf for tf in timeframes if timeframe_ms(tf) >= feed_ms and timeframe_ms(tf) % feed_ms == 0]
    if not usable or not len(d):
        return []
    c = feed_candles(d, PATTERN_BARS * max(timeframe_ms(tf) for tf in usable) // feed_ms)
    if not len(c.ts_ms):
        return []
    now = int(c.ts_ms[-1]) + feed_ms
    out = []
    for tf in usable:
        b = to_tf(c, feed_ms, tf)
        k = max(0, len(b) - PATTERN_BARS)
        if len(b) - k < 30:
            continue
        close_ms = b.close_ms[k:]
        for det in detect_patterns(b.high[k:], b.low[k:], b.close[k:]):
            at = int(close_ms[det.completion_bar])
            if now - at <= recent_bars * b.tf_ms:
                out.append({"timeframe": tf, "kind": det.kind, "direction": det.direction, "completion_ms": at,
                            "level": float(det.level)})
    out.sort(key=lambda p: (-p["completion_ms"], timeframe_ms(p["timeframe"])))
    return out[:limit]
