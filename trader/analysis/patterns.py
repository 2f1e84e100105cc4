"""Chart patterns from swing pivots with geometric rules.

A swing high at bar i is the highest high of bars [i − k, i + k]; it is only *known* at bar i + k (its
confirmation bar), and every pattern is judged at the confirmation bar of its last pivot, its completion bar, with
the ATR of that bar as the yardstick. Nothing after the completion bar is read: cutting the series anywhere leaves
every earlier detection unchanged (the tests check it).

Pivots alternate high/low. Two confirmed highs in a row keep the higher one (a zigzag), decided in confirmation
order, so the sequence known at bar t depends only on bars ≤ t.

Rules (sizes in ATRs at the completion bar):
- double top / bottom: peaks (troughs) within ``equal_atr`` of each other, the valley between at least
  ``depth_atr`` below (above) the lower peak, at least ``min_separation`` bars apart;
- head and shoulders (and inverse): a head at least ``head_atr`` beyond both shoulders, shoulders within
  ``shoulder_atr`` of each other, neckline lows within ``neckline_atr``;
- triangles and wedges over five pivots: least-squares lines through the highs and the lows, each fitting its
  pivots within ``fit_atr``; a line is flat when it moves less than ``flat_atr`` over the pattern; lines must
  converge (end width ≤ ``converge`` × start width). Flat highs + rising lows = ascending triangle, falling highs +
  flat lows = descending, falling highs + rising lows = symmetric, both rising = rising wedge, both falling =
  falling wedge;
- range breakout: a close beyond the high/low of the previous ``breakout_window`` bars while that range was at
  most ``breakout_max_width_atr`` wide (features.range_breakout), reported at the first bar of a breakout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import talib

from trader.analysis.features import range_breakout

Array = np.ndarray

BULLISH = {"double_bottom": 1, "inverse_head_and_shoulders": 1, "ascending_triangle": 1, "falling_wedge": 1,
           "range_breakout_up": 1}
BEARISH = {"double_top": -1, "head_and_shoulders": -1, "descending_triangle": -1, "rising_wedge": -1,
           "range_breakout_down": -1}
DIRECTION = {**BULLISH, **BEARISH, "symmetric_triangle": 0}


@dataclass(frozen=True)
class PatternParams:
    # k: bars on each side of a swing point. 5 keeps the swings a trader would draw; with 3, noise makes so many
    # pivots that a random walk shows a "pattern" every ~10 bars.
    pivot_bars: int = 5
    equal_atr: float = 1.0
    depth_atr: float = 2.5
    min_separation: int = 6
    head_atr: float = 1.0
    shoulder_atr: float = 1.5
    neckline_atr: float = 2.0
    fit_atr: float = 1.0
    flat_atr: float = 1.0
    converge: float = 0.8
    min_height_atr: float = 3.0  # triangles/wedges: start width at least this (a tight drift is no pattern)
    atr_period: int = 14
    breakout_window: int = 48
    breakout_max_width_atr: float = 6.0


@dataclass(frozen=True)
class Pivot:
    bar: int
    price: float
    kind: int  # +1 swing high, −1 swing low
    confirmed: int  # the bar at which it became known (bar + k)


@dataclass(frozen=True)
class Detection:
    kind: str
    direction: int  # +1 bullish, −1 bearish, 0 either way
    start_bar: int
    completion_bar: int  # the last bar whose data the detection used
    level: float  # the level a trade would watch: neckline, flat side, or the range edge broken
    pivots: tuple[tuple[int, float], ...] = field(default=())


def swing_pivots(high: Array, low: Array, k: int = 3) -> list[Pivot]:
    """Every swing high/low, in order of confirmation (ties on the left side are not pivots; on the right they
    are, so a flat top yields its first bar)."""
    n = len(high)
    if n < 2 * k + 1:
        return []
    mx = talib.MAX(high, timeperiod=k)
    mn = talib.MIN(low, timeperiod=k)
    i = np.arange(k, n - k)
    with np.errstate(invalid="ignore"):
        is_h = (high[i] > mx[i - 1]) & (high[i] >= mx[i + k])
        is_l = (low[i] < mn[i - 1]) & (low[i] <= mn[i + k])
    out = [Pivot(int(b), float(high[b]), 1, int(b + k)) for b in i[is_h]]
    out += [Pivot(int(b), float(low[b]), -1, int(b + k)) for b in i[is_l]]
    out.sort(key=lambda p: (p.confirmed, p.kind))
    return out


def _line(points: list[Pivot]) -> tuple[float, float, float]:
    """(slope per bar, intercept, worst absolute residual) of the least-squares line through the pivots."""
    x = np.array([p.bar for p in points], dtype=float)
    y = np.array([p.price for p in points], dtype=float)
    slope, icpt = np.polyfit(x, y, 1)
    return float(slope), float(icpt), float(np.abs(y - (slope * x + icpt)).max())


def _judge(seq: list[Pivot], atr: float, bar: int, p: PatternParams) -> list[Detection]:
    found: list[Detection] = []
    if len(seq) >= 3:
        a, b, c = seq[-3:]
        # The move into the first peak must start from at least as far as the valley between the peaks (a top
        # ends a rise); otherwise the two lows of a head-and-shoulders' neckline would read as a double bottom.
        into = len(seq) < 4 or a.kind * (b.price - seq[-4].price) >= 0
        if into and c.bar - a.bar >= p.min_separation and abs(a.price - c.price) <= p.equal_atr * atr:
            if a.kind == 1 and min(a.price, c.price) - b.price >= p.depth_atr * atr:
                found.append(Detection("double_top", -1, a.bar, bar, b.price, _pts(seq[-3:])))
            if a.kind == -1 and b.price - max(a.price, c.price) >= p.depth_atr * atr:
                found.append(Detection("double_bottom", 1, a.bar, bar, b.price, _pts(seq[-3:])))
    if len(seq) >= 5:
        s1, n1, hd, n2, s2 = seq[-5:]
        sign = s1.kind  # +1: peaks (head and shoulders), −1: troughs (inverse)
        head_out = sign * (hd.price - s1.price) >= p.head_atr * atr and sign * (hd.price - s2.price) >= p.head_atr * atr
        shoulders = abs(s1.price - s2.price) <= p.shoulder_atr * atr
        neck = abs(n1.price - n2.price) <= p.neckline_atr * atr
        inner = min(s1.price, s2.price) if sign == 1 else max(s1.price, s2.price)  # the shoulder nearer the neck
        above_neck = sign * (inner - (n1.price + n2.price) / 2) >= p.head_atr * atr
        if head_out and shoulders and neck and above_neck:
            kind = "head_and_shoulders" if sign == 1 else "inverse_head_and_shoulders"
            found.append(Detection(kind, -sign, s1.bar, bar, (n1.price + n2.price) / 2, _pts(seq[-5:])))
        else:
            found += _converging(seq[-5:], atr, bar, p)
    return found


def _converging(five: list[Pivot], atr: float, bar: int, p: PatternParams) -> list[Detection]:
    highs = [q for q in five if q.kind == 1]
    lows = [q for q in five if q.kind == -1]
    sh, ih, rh = _line(highs)
    sl, il, rl = _line(lows)
    if max(rh, rl) > p.fit_atr * atr:
        return []
    x0, x1 = five[0].bar, five[-1].bar
    span = x1 - x0
    w0, w1 = (sh - sl) * x0 + ih - il, (sh - sl) * x1 + ih - il
    if w0 < p.min_height_atr * atr or w1 <= 0 or w1 > p.converge * w0:
        return []
    move_h, move_l = sh * span / atr, sl * span / atr
    flat_h, flat_l = abs(move_h) <= p.flat_atr, abs(move_l) <= p.flat_atr
    top, bottom = sh * x1 + ih, sl * x1 + il
    kind, level = None, top
    if flat_h and move_l > p.flat_atr:
        kind, level = "ascending_triangle", top
    elif flat_l and move_h < -p.flat_atr:
        kind, level = "descending_triangle", bottom
    elif move_h < -p.flat_atr and move_l > p.flat_atr:
        kind, level = "symmetric_triangle", (top + bottom) / 2
    elif move_h > p.flat_atr and move_l > p.flat_atr:
        kind, level = "rising_wedge", bottom
    elif move_h < -p.flat_atr and move_l < -p.flat_atr:
        kind, level = "falling_wedge", top
    if kind is None:
        return []
    return [Detection(kind, DIRECTION[kind], x0, bar, level, _pts(five))]


def _pts(seq: list[Pivot]) -> tuple[tuple[int, float], ...]:
    return tuple((q.bar, q.price) for q in seq)


def detect_pivot_patterns(high: Array, low: Array, close: Array, p: PatternParams | None = None) -> list[Detection]:
    """Doubles, heads and shoulders, triangles and wedges, oldest completion first."""
    p = p or PatternParams()
    atr = talib.ATR(high, low, close, timeperiod=p.atr_period)
    seq: list[Pivot] = []
    out: list[Detection] = []
    last: dict[str, Detection] = {}
    for pv in swing_pivots(high, low, p.pivot_bars):
        if seq and seq[-1].kind == pv.kind:
            # Same side twice: the zigzag keeps the more extreme point (decided now, at pv's confirmation).
            if pv.kind * (pv.price - seq[-1].price) <= 0:
                continue
            seq[-1] = pv
        else:
            seq.append(pv)
        seq = seq[-5:]
        a = atr[pv.confirmed]
        if not np.isfinite(a) or a <= 0:
            continue
        for d in _judge(seq, float(a), pv.confirmed, p):
            # One report per formation: a triangle that gains another touch, or a top that becomes a triple top,
            # is the pattern already reported (its span overlaps the last one of its kind by more than a pivot).
            prev = last.get(d.kind)
            if prev is not None and d.start_bar < prev.pivots[-1][0]:
                continue
            last[d.kind] = d
            out.append(d)
    return out


def detect_breakouts(high: Array, low: Array, close: Array, p: PatternParams | None = None) -> list[Detection]:
    """Range breakouts at the first bar of each breakout run."""
    p = p or PatternParams()
    atr = talib.ATR(high, low, close, timeperiod=p.atr_period)
    flag, rh, rl, _ = range_breakout(high, low, close, atr, p.breakout_window, p.breakout_max_width_atr)
    f = np.nan_to_num(flag)
    prev = np.r_[0.0, f[:-1]]
    starts = np.flatnonzero((f != 0) & (f != prev))
    return [Detection("range_breakout_up" if f[t] > 0 else "range_breakout_down", int(f[t]),
                      int(max(t - p.breakout_window, 0)), int(t), float(rh[t] if f[t] > 0 else rl[t]))
            for t in starts]


def detect_patterns(high: Array, low: Array, close: Array, p: PatternParams | None = None) -> list[Detection]:
    """Every detection, ordered by completion bar."""
    found = detect_pivot_patterns(high, low, close, p) + detect_breakouts(high, low, close, p)
    return sorted(found, key=lambda d: (d.completion_bar, d.kind))


def pattern_signal(n: int, detections: list[Detection], hold: int = 0) -> tuple[Array, Array]:
    """(bullish, bearish) counts per bar of detections completed within the last ``hold`` bars (0: on that bar
    only) — a per-bar view for a fusion layer; the detections themselves carry the details."""
    bull = np.zeros(n)
    bear = np.zeros(n)
    for d in detections:
        target = bull if d.direction > 0 else bear if d.direction < 0 else None
        if target is not None:
            target[d.completion_bar : min(n, d.completion_bar + hold + 1)] += 1
    return bull, bear
