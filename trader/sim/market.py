"""The replayed market: a clock and, per symbol, the contract and mark price paths rebuilt from real 1m candles.

Inside a 1m bar the contract price follows the conventional OHLC path (open → low → high → close for an up bar,
open → high → low → close for a down bar) through four points, linearly interpolated between them, so that stops and
limits see every extreme the real bar saw. The mark price is the contract price plus the basis read from the hourly
mark candles (interpolated between hours). Admin scripts can override the path (set price, flash crash).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trader.config.pairs import exchange_symbol
from trader.data.store import load_candles, load_funding
from trader.data.timeframes import timeframe_ms

MINUTE = 60_000
HOUR = 3_600_000
FUNDING_INTERVAL = 8 * HOUR
# Finest candles first: the replay uses the finest timeframe a pair has (1m for the bundled set).
BAR_TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h")
MARK_TIMEFRAMES = ("1h", "8h")

CLOCK_MODES = ("real", "accelerated", "stepped")


@dataclass
class Clock:
    """Simulated time in ms UTC. ``real`` runs at wall speed, ``accelerated`` at ``speed``×, ``stepped`` only moves
    when told to (tests, drills)."""

    start_ms: int
    mode: str = "stepped"
    speed: float = 1.0
    _sim0: int = 0
    _wall0: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in CLOCK_MODES:
            raise ValueError(f"clock mode must be one of {CLOCK_MODES}")
        if self.mode == "real":
            self.speed = 1.0
        self._sim0 = self.start_ms
        self._wall0 = time.monotonic()

    def now_ms(self) -> int:
        if self.mode == "stepped":
            return self._sim0
        return self._sim0 + int((time.monotonic() - self._wall0) * 1000 * self.speed)

    def set(self, ms: int) -> None:
        self._sim0 = int(ms)
        self._wall0 = time.monotonic()

    def step(self, ms: int) -> int:
        """Move simulated time forward by ``ms`` (in every mode: drills skip ahead too). Returns the new time."""
        if ms < 0:
            raise ValueError("the clock does not run backwards")
        self.set(self.now_ms() + int(ms))
        return self._sim0


@dataclass
class ScriptedPath:
    """Admin override of a symbol's price: points (t_ms, price) interpolated linearly. With ``hold`` the last price
    stays after the last point; without it the replay resumes."""

    points: list[tuple[int, float]]
    hold: bool = False

    def active(self, t: int) -> bool:
        return self.points[0][0] <= t and (self.hold or t <= self.points[-1][0])

    def price(self, t: int) -> float:
        ts = [p[0] for p in self.points]
        ps = [p[1] for p in self.points]
        return float(np.interp(t, ts, ps))


@dataclass
class SymbolData:
    pair: str
    symbol: str
    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray
    basis_ts: np.ndarray
    basis: np.ndarray
    funding_ts: np.ndarray
    funding_rate: np.ndarray
    typical_range: float
    bar_ms: int = MINUTE
    script: ScriptedPath | None = None
    mark_script: ScriptedPath | None = None  # moves the mark alone (a basis shock), over any price script
    # Bars touched by a script, minute open → [o, h, l, c], so klines show what the market "did".
    scripted_bars: dict[int, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Scalar lookups run hundreds of thousands of times per replayed day: plain lists and bisect beat numpy
        # calls on single values by an order of magnitude.
        self._ts = self.ts.tolist()
        self._ohlc = list(zip(self.o.tolist(), self.h.tolist(), self.low.tolist(), self.c.tolist(), strict=True))
        self._basis_ts = self.basis_ts.tolist()
        self._basis = self.basis.tolist()

    def append_bars(self, rows: list[list[float]]) -> int:
        """Add closed bars after the last one (a mirrored live market); returns how many were new.

        Rows are ``[ts, open, high, low, close, volume]``; rows at or before the last bar are ignored, so a
        resync that repeats bars is harmless.
        """
        last = self._ts[-1] if self._ts else -1
        fresh = [r for r in rows if int(r[0]) > last]
        if not fresh:
            return 0
        arr = np.asarray(fresh, dtype="float64")
        self.ts = np.concatenate([self.ts, arr[:, 0].astype("int64")])
        self.o = np.concatenate([self.o, arr[:, 1]])
        self.h = np.concatenate([self.h, arr[:, 2]])
        self.low = np.concatenate([self.low, arr[:, 3]])
        self.c = np.concatenate([self.c, arr[:, 4]])
        self.v = np.concatenate([self.v, arr[:, 5]])
        self._ts.extend(int(r[0]) for r in fresh)
        self._ohlc.extend((float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in fresh)
        return len(fresh)

    def append_funding(self, points: list[tuple[int, float]]) -> int:
        last = int(self.funding_ts[-1]) if len(self.funding_ts) else -1
        fresh = [(t, r) for t, r in points if t > last]
        if fresh:
            self.funding_ts = np.concatenate([self.funding_ts, np.array([t for t, _ in fresh], dtype="int64")])
            self.funding_rate = np.concatenate([self.funding_rate, np.array([r for _, r in fresh])])
        return len(fresh)

    # ---- the replayed path -------------------------------------------------------------------------------------
    def bar_index(self, t: int) -> int:
        """Index of the bar holding ``t`` (or the last bar before it); −1 before the data."""
        return bisect_right(self._ts, t) - 1

    def _bar_points(self, i: int) -> tuple[list[int], list[float]]:
        t0 = self._ts[i]
        o, h, low, c = self._ohlc[i]
        mid1, mid2 = (low, h) if c >= o else (h, low)
        return [t0 + off for off in self.offsets()], [o, mid1, mid2, c]

    def offsets(self) -> tuple[int, int, int, int]:
        """Path corners inside a bar: open, first extreme at 1/3, second at 2/3, close at the last ms."""
        b = self.bar_ms
        return (0, b // 3, 2 * b // 3, b - 1)

    def replay_price(self, t: int) -> float:
        i = self.bar_index(t)
        if i < 0:
            return float(self.o[0])
        if t >= self._ts[i] + self.bar_ms:  # in a data hole or past the end: the last close holds
            return self._ohlc[i][3]
        pts_t, pts_p = self._bar_points(i)
        k = bisect_right(pts_t, t) - 1
        if k >= 3:
            return pts_p[3]
        t0, t1 = pts_t[k], pts_t[k + 1]
        return pts_p[k] + (pts_p[k + 1] - pts_p[k]) * (t - t0) / (t1 - t0)

    def price(self, t: int) -> float:
        if self.script is not None and self.script.active(t):
            return self.script.price(t)
        return self.replay_price(t)

    def basis_at(self, t: int) -> float:
        """Mark − contract at the open of the mark candle holding ``t``, held until the next one: interpolating
        towards the next candle would read the future."""
        if not self._basis_ts:
            return 0.0
        j = bisect_right(self._basis_ts, t) - 1
        return self._basis[max(j, 0)]

    def mark(self, t: int) -> float:
        if self.mark_script is not None and self.mark_script.active(t):
            return self.mark_script.price(t)
        if self.script is not None and self.script.active(t):
            return self.script.price(t)
        return self.replay_price(t) + self.basis_at(t)

    def path_points(self, a: int, b: int) -> list[int]:
        """Times of the path's corners in (a, b], plus script points, in order: the instants where a stop or a
        limit can first be crossed."""
        out: list[int] = []
        i0 = max(0, self.bar_index(a))
        i1 = self.bar_index(b)
        for i in range(i0, i1 + 1):
            base = self._ts[i]
            for off in self.offsets():
                t = base + off
                if a < t <= b:
                    out.append(t)
        for script in (self.script, self.mark_script):
            if script is not None:
                out.extend(t for t, _ in script.points if a < t <= b)
        out.append(b)
        return sorted(set(out))

    def volatility(self, t: int) -> float:
        """Current bar's high-low range relative to the typical one (1.0 = an ordinary bar)."""
        if self.script is not None and self.script.active(t):
            # A held price is a calm market; a moving script (flash crash) is as volatile as its bar.
            bar = self.scripted_bars.get(t - t % self.bar_ms)
            if self.script.hold or bar is None or self.typical_range <= 0:
                return 1.0
            return float((bar[1] - bar[2]) / bar[0] / self.typical_range)
        i = self.bar_index(t)
        if i < 0 or self.typical_range <= 0:
            return 1.0
        # The previous bar's range and the current bar's range so far: the whole current bar would leak the
        # high and low still to come.
        if i > 0:
            po, ph, pl, _ = self._ohlc[i - 1]
            prev = (ph - pl) / po
        else:
            prev = 0.0
        pts_t, pts_p = self._bar_points(i)
        seen = [p for tt, p in zip(pts_t, pts_p, strict=True) if tt <= t] + [self.replay_price(t)]
        now_range = (max(seen) - min(seen)) / pts_p[0]
        return float(max(prev, now_range) / self.typical_range)

    def record_scripted(self, t: int, price: float) -> None:
        m = t - t % self.bar_ms
        bar = self.scripted_bars.get(m)
        if bar is None:
            self.scripted_bars[m] = [price, price, price, price]
        else:
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price

    # ---- candles -----------------------------------------------------------------------------------------------
    def minute_bar(self, i: int, now: int, mark: bool) -> list[float] | None:
        """OHLCV of 1m bar ``i`` as known at ``now`` (partial when the bar is still open)."""
        t0 = int(self.ts[i])
        if t0 > now:
            return None
        if t0 in self.scripted_bars:
            o, h, low, c = self.scripted_bars[t0]
            if now < t0 + self.bar_ms:
                p = self.price(now)
                h, low, c = max(h, p), min(low, p), p
            return [o, h, low, c, float(self.v[i])]
        if now >= t0 + self.bar_ms - 1:
            o, h, low, c, v = float(self.o[i]), float(self.h[i]), float(self.low[i]), float(self.c[i]), float(self.v[i])
        else:
            pts_t, pts_p = self._bar_points(i)
            seen = [p for tt, p in zip(pts_t, pts_p, strict=True) if tt <= now] + [self.replay_price(now)]
            o, h, low, c = seen[0], max(seen), min(seen), seen[-1]
            v = float(self.v[i]) * (now - t0 + 1) / self.bar_ms
        if mark:
            d = self.basis_at(t0)
            o, h, low, c = o + d, h + d, low + d, c + d
        return [o, h, low, c, v]

    def klines(self, interval: str, now: int, start: int | None, end: int | None, limit: int,
               mark: bool = False) -> list[list[float]]:
        """Candles (open time, o, h, l, c, v) of ``interval`` aligned to the epoch, none after ``now``."""
        step = timeframe_ms(interval)
        if step % self.bar_ms:
            raise ValueError(f"{self.symbol} is replayed from {self.bar_ms // MINUTE}m candles; no {interval} klines")
        last_open = (min(now, end) if end is not None else now) // step * step
        if start is not None:
            first_open = -(-start // step) * step
        else:
            first_open = last_open - (limit - 1) * step
        out: list[list[float]] = []
        b = first_open
        while b <= last_open and len(out) < limit:
            i0 = int(np.searchsorted(self.ts, b, side="left"))
            i1 = int(np.searchsorted(self.ts, min(b + step - 1, now), side="right"))
            bars = [m for m in (self.minute_bar(i, now, mark) for i in range(i0, i1)) if m is not None]
            if bars:
                out.append([b, bars[0][0], max(x[1] for x in bars), min(x[2] for x in bars), bars[-1][3],
                            sum(x[4] for x in bars)])
            b += step
        return out

    # ---- funding -----------------------------------------------------------------------------------------------
    def next_funding_time(self, t: int) -> int:
        return (t // FUNDING_INTERVAL + 1) * FUNDING_INTERVAL

    def funding_rate_at(self, t: int) -> float:
        """Rate settled at funding time ``t`` (the file's value; 0.01 % interest baseline where the file has none)."""
        j = int(np.searchsorted(self.funding_ts, t, side="left"))
        if j < len(self.funding_ts) and int(self.funding_ts[j]) == t:
            return float(self.funding_rate[j])
        return 0.0001

    def last_settled_rate(self, t: int) -> float:
        """The latest rate settled at or before ``t``: the live estimate a replay can show without look-ahead."""
        j = int(np.searchsorted(self.funding_ts, t, side="right")) - 1
        return float(self.funding_rate[j]) if j >= 0 else 0.0001

    def funding_times(self, a: int, b: int) -> list[int]:
        """Settlement instants in (a, b]."""
        first = (a // FUNDING_INTERVAL + 1) * FUNDING_INTERVAL
        return list(range(first, b + 1, FUNDING_INTERVAL))


def _first_available(data_dir: Path, pair: str, timeframes: tuple[str, ...], kind: str) -> tuple[str, pd.DataFrame]:
    for tf in timeframes:
        try:
            return tf, load_candles(data_dir, pair, tf, kind)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"no {kind} candles ({', '.join(timeframes)}) for {pair} in {data_dir}")


def symbol_from_rows(pair: str, rows: list[list[float]], funding: list[tuple[int, float]] = ()) -> SymbolData:
    """A market built from candles fetched from another exchange (the mirror's starting history)."""
    if not rows:
        raise ValueError(f"no candles for {pair}")
    arr = np.asarray(rows, dtype="float64")
    o, h, low = arr[:, 1], arr[:, 2], arr[:, 3]
    ranges = (h - low) / o
    return SymbolData(
        pair=pair, symbol=exchange_symbol(pair), ts=arr[:, 0].astype("int64"), o=o, h=h, low=low, c=arr[:, 4],
        v=arr[:, 5], basis_ts=np.array([], dtype="int64"), basis=np.array([], dtype="float64"),
        funding_ts=np.array([t for t, _ in funding], dtype="int64"),
        funding_rate=np.array([r for _, r in funding], dtype="float64"),
        typical_range=float(np.median(ranges)), bar_ms=MINUTE,
    )


def load_symbol(data_dir: Path, pair: str) -> SymbolData:
    tf, fut = _first_available(data_dir, pair, BAR_TIMEFRAMES, "futures")
    if fut.empty:
        raise ValueError(f"no {tf} futures candles for {pair} in {data_dir}")
    ts = fut["timestamp"].to_numpy("int64")
    o = fut["open"].to_numpy("float64")
    basis_ts = np.array([], dtype="int64")
    basis = np.array([], dtype="float64")
    try:
        _, mark = _first_available(data_dir, pair, MARK_TIMEFRAMES, "mark")
        if not mark.empty:
            mts = mark["timestamp"].to_numpy("int64")
            idx = np.searchsorted(ts, mts, side="left")
            ok = (idx < len(ts)) & (ts[np.minimum(idx, len(ts) - 1)] == mts)
            basis_ts = mts[ok]
            basis = mark["open"].to_numpy("float64")[ok] - o[idx[ok]]
    except FileNotFoundError:
        pass
    fund = load_funding(data_dir, pair)
    h = fut["high"].to_numpy("float64")
    low = fut["low"].to_numpy("float64")
    ranges = (h - low) / o
    return SymbolData(
        pair=pair, symbol=exchange_symbol(pair), ts=ts, o=o, h=h, low=low, c=fut["close"].to_numpy("float64"),
        v=fut["volume"].to_numpy("float64") if "volume" in fut.columns else np.zeros(len(ts)),
        basis_ts=basis_ts, basis=basis,
        funding_ts=fund["timestamp"].to_numpy("int64"), funding_rate=fund["funding_rate"].to_numpy("float64"),
        typical_range=float(np.median(ranges)) if len(ranges) else 0.0, bar_ms=timeframe_ms(tf),
    )
