"""The setups' and the master's indicator columns one feed bar at a time, equal to ``compute_indicators`` on the
whole series (tests/strategy/test_incremental.py compares every column on the shipped data).

Why: the live feed used to rerun ``compute_indicators`` over its whole rolling window (2,266 5m bars for the master)
on every candle, ~3–8 ms per pair. Here a feed bar updates O(1) state: the 5m setup always, a higher timeframe only
on the feed bar that closes one of its bars (TA-Lib streams, ``trader.analysis.incremental``), and the columns of
the feed bar are assembled from the latest closed bar of each timeframe exactly as ``setups.base_columns`` and
``MasterStrategy.compute_indicators`` assemble them from arrays (``held``/``fresh`` by close time, staleness,
positional warm-ups counted from the first bar the stream saw).

    stream = MasterStrategy.indicator_stream(params, feed_ms)
    row = stream.step(ts_ms, o, h, l, c, v)   # {line: float} for that bar, as compute_indicators would give it
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from trader.analysis import incremental as inc
from trader.analysis.regime import UNKNOWN
from trader.data.timeframes import timeframe_ms
from trader.strategy.setups import Setup

NAN = math.nan
P = Mapping[str, Any]

# One row of a setup on one timeframe bar: the keys of ``setups.oscillation`` & co.
Row = tuple[float, float, float, float, float, bool]  # signal, vote, exit_long, exit_short, atr, warm


class _OscStep:
    def __init__(self, p: P, atr: inc.TaStream) -> None:
        self.rsi = inc.rsi(int(p["osc_rsi_period"]))
        self.bb = inc.bbands(int(p["osc_bb_period"]), float(p["osc_bb_dev"]))
        self.atr = atr
        self.lo, self.hi = float(p["osc_rsi_low"]), float(p["osc_rsi_high"])
        self.slack = float(p["osc_vote_slack"])
        self.x = float(p["osc_rsi_exit"])
        self.prev_rsi = NAN

    def update(self, b: inc.TfBar, atr: float) -> Row:
        rsi = self.rsi.update(b.close)
        upper, _mid, lower = self.bb.update(b.close)
        lo_, hi_ = self.lo, self.hi
        sig = 1.0 if (rsi < lo_ and b.low <= lower) else (-1.0 if (rsi > hi_ and b.high >= upper) else 0.0)
        vote = 1.0 if rsi <= lo_ + self.slack else (-1.0 if rsi >= hi_ - self.slack else 0.0)
        p, x = self.prev_rsi, self.x
        self.prev_rsi = rsi
        exit_long = 1.0 if (p < x and rsi >= x) else 0.0
        xs = 100.0 - x
        exit_short = 1.0 if (p > xs and rsi <= xs) else 0.0
        warm = not (rsi != rsi or upper != upper or atr != atr)
        return sig, vote, exit_long, exit_short, atr, warm


class _BrkStep:
    def __init__(self, p: P, atr: inc.TaStream) -> None:
        n = self.n = int(p["brk_lookback"])
        self.mx, self.mn, self.vol = inc.rolling_max(n), inc.rolling_min(n), inc.sma(n)
        self.mult = float(p["brk_volume_mult"])
        self.prev = (NAN, NAN, NAN)
        self.i = -1
        self.last_nz_i, self.last_nz = -10**18, 0.0

    def update(self, b: inc.TfBar, atr: float) -> Row:
        self.i += 1
        prior_hi, prior_lo, prior_vol = self.prev
        self.prev = (self.mx.update(b.high), self.mn.update(b.low), self.vol.update(b.volume))
        c = b.close
        loud = b.volume >= self.mult * prior_vol
        sig = 1.0 if (c > prior_hi and loud) else (-1.0 if (c < prior_lo and loud) else 0.0)
        beyond = 1.0 if c > prior_hi else (-1.0 if c < prior_lo else 0.0)
        warm = not (prior_hi != prior_hi or prior_vol != prior_vol or atr != atr)
        if not warm:
            beyond = 0.0
        if beyond != 0.0:
            self.last_nz_i, self.last_nz = self.i, beyond
        vote = self.last_nz if self.i - self.last_nz_i < self.n else 0.0
        return sig, vote, 1.0 if beyond < 0 else 0.0, 1.0 if beyond > 0 else 0.0, atr, warm


class _TrdStep:
    def __init__(self, p: P, atr: inc.TaStream) -> None:
        self.f, self.m, self.s = inc.sma(int(p["trd_fast"])), inc.sma(int(p["trd_mid"])), inc.sma(int(p["trd_slow"]))
        k = int(p["trd_support_lookback"])
        self.mn, self.mx = inc.rolling_min(k), inc.rolling_max(k)
        tol = float(p["trd_touch"])
        self.up_tol, self.dn_tol = 1 + tol, 1 - tol
        self.prev = (NAN, NAN)

    def update(self, b: inc.TfBar, atr: float) -> Row:
        c = b.close
        f, m, s = self.f.update(c), self.m.update(c), self.s.update(c)
        support, resistance = self.prev
        self.prev = (self.mn.update(b.low), self.mx.update(b.high))
        up = f > m and m > s
        down = f < m and m < s
        touch_long = b.low <= m * self.up_tol or b.low <= support * self.up_tol
        touch_short = b.high >= m * self.dn_tol or b.high >= resistance * self.dn_tol
        long_ = up and touch_long and c > m and c > b.open
        short = down and touch_short and c < m and c < b.open
        sig = 1.0 if long_ else (-1.0 if short else 0.0)
        vote = 1.0 if up else (-1.0 if down else 0.0)
        exit_long = 1.0 if (f < m or c < s) else 0.0
        exit_short = 1.0 if (f > m or c > s) else 0.0
        warm = not (s != s or support != support or atr != atr)
        return sig, vote, exit_long, exit_short, atr, warm


_STEPS = {"oscillation": _OscStep, "breakout": _BrkStep, "trend": _TrdStep}


class _Timeframe:
    """One timeframe built from the feed: its aggregator, its shared ATR, the setups computed on it, and the rows
    of its latest closed bar."""

    def __init__(self, tf: str, feed_ms: int, p: P) -> None:
        self.tf_ms = timeframe_ms(tf)
        self.agg = inc.TfAggregator(self.tf_ms, feed_ms)
        self.atr = inc.atr(int(p["atr_period"]))
        self.steps: dict[str, Any] = {}
        self.held = inc.HeldValue(self.tf_ms)
        self.count = 0  # bars of this timeframe closed so far
        self.on_close: list[Any] = []  # extra per-bar work (the master's regime)

    def add(self, ts_ms: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        bar = self.agg.add(ts_ms, o, h, lo, c, v)
        if bar is None:
            return
        a = self.atr.update(bar.high, bar.low, bar.close)
        rows: dict[str, Any] = {name: step.update(bar, a) for name, step in self.steps.items()}
        for fn in self.on_close:
            fn(bar, rows, self.count)
        self.count += 1
        self.held.set(bar.close_ms, rows)


class _SetupCols:
    """``setups.base_columns`` for one setup, one feed bar at a time."""

    def __init__(self, setup: Setup, p: P, feed_ms: int, tfs: dict[str, _Timeframe]) -> None:
        self.name = setup.name
        sig_tf, grade = setup.timeframes(p)
        self.order = [(tfs[tf], tf == sig_tf, tf in grade) for tf in dict.fromkeys((sig_tf, *grade))]
        self.sig_in_grade = sig_tf in grade
        self.warmup = setup.warmup_bars(p, feed_ms)
        for tf in (sig_tf, *grade):
            if setup.name not in tfs[tf].steps:
                tfs[tf].steps[setup.name] = _STEPS[setup.name](p, tfs[tf].atr)

    def row(self, pos: int, close_ms: int) -> tuple[float, float, float, float, float, bool, float]:
        """(signal, agree, exit_long, exit_short, atr, ready, vote_mean) at the feed bar ``pos`` closing at
        ``close_ms``."""
        name = self.name
        ready = pos >= self.warmup
        votes: list[float] = []
        signal = exit_long = exit_short = 0.0
        atr = sig_vote = NAN
        for tf, is_sig, is_grade in self.order:
            rows = tf.held.held(close_ms)
            r = rows[name] if rows is not None else None
            if r is None or not r[5]:
                ready = False
            if is_grade:
                votes.append(r[1] if r is not None else NAN)
            if is_sig:
                if r is not None:
                    if tf.held.is_fresh(close_ms):
                        signal, exit_long, exit_short = r[0], r[2], r[3]
                    atr, sig_vote = r[4], r[1]
        sig = signal if ready else 0.0
        if not self.sig_in_grade:
            votes.append(sig_vote)
        agree = 0.0
        total = 0.0
        for v in votes:
            if v == sig and sig != 0:
                agree += 1.0
            total += v
        vote_mean = total / len(votes)
        agree = max(agree, 1.0) if sig != 0 else 0.0
        return sig, agree, exit_long, exit_short, atr, ready, vote_mean


class SetupStream:
    """The columns of ``_SingleSetup.compute_indicators`` (``ready`` and ``<prefix>_signal/agree/exit_long/
    exit_short/atr``), one feed bar at a time."""

    def __init__(self, setup: Setup, params: P, feed_ms: int) -> None:
        self.feed_ms = feed_ms
        self.pos = 0
        self.tfs: dict[str, _Timeframe] = {}
        self._setups = [self._add_setup(setup, params)]
        self.prefix = setup.prefix
        self.keys = tuple(f"{setup.prefix}_{k}" for k in ("signal", "agree", "exit_long", "exit_short", "atr"))

    def _add_setup(self, setup: Setup, p: P) -> _SetupCols:
        sig, grade = setup.timeframes(p)
        for tf in (sig, *grade):
            if tf not in self.tfs:
                self.tfs[tf] = _Timeframe(tf, self.feed_ms, p)
        return _SetupCols(setup, p, self.feed_ms, self.tfs)

    def _advance(self, ts_ms: int, o: float, h: float, lo: float, c: float, v: float) -> tuple[int, int]:
        for tf in self.tfs.values():
            tf.add(ts_ms, o, h, lo, c, v)
        pos = self.pos
        self.pos += 1
        return pos, ts_ms + self.feed_ms

    def step(self, ts_ms: int, o: float, h: float, lo: float, c: float, v: float) -> dict[str, float]:
        pos, close_ms = self._advance(ts_ms, o, h, lo, c, v)
        sig, agree, el, es, atr, ready, _vm = self._setups[0].row(pos, close_ms)
        k = self.keys
        return {"ready": 1.0 if ready else 0.0, k[0]: sig, k[1]: agree, k[2]: el, k[3]: es, k[4]: atr}


class MasterStream(SetupStream):
    """``MasterStrategy.compute_indicators``'s ten lines, one feed bar at a time."""

    def __init__(self, setups: list[Setup], params: P, feed_ms: int, *, regime_warm: int, warmup: int,
                 route_codes: Mapping[str, float], regime_codes: Mapping[str, float], exit_bits: Mapping[str, tuple],
                 hysteresis: Any, regime: inc.RegimeStream) -> None:
        self.feed_ms = feed_ms
        self.pos = 0
        self.tfs = {}
        self._setups = [self._add_setup(s, params) for s in setups]
        self._codes = [route_codes[s.name] for s in setups]
        self._bits = [exit_bits[s.name] for s in setups]
        self._names = [s.name for s in setups]
        self.warmup = warmup
        self.regime_warm = regime_warm
        self.route_warm = regime_warm + int(params["regime_memory"]) + int(params["regime_confirm"])
        self.regime_codes = regime_codes
        self.hysteresis = hysteresis
        self.regime = regime
        rtf = str(params["regime_timeframe"])
        if rtf not in self.tfs:
            self.tfs[rtf] = _Timeframe(rtf, feed_ms, params)
        self.rtf = self.tfs[rtf]
        self.rtf.on_close.append(self._regime_bar)
        vw = int(params["volume_window"])
        self._vol_mean, self._vol_sd = inc.sma(vw), inc.stddev(vw, 1.0)
        self._prev_logv = NAN

    def _regime_bar(self, bar: inc.TfBar, rows: dict[str, Any], j: int) -> None:
        label = self.regime.update(bar.high, bar.low, bar.close)
        if j < self.regime_warm:
            label = UNKNOWN
        route = self.hysteresis.step(label)
        if j < self.route_warm:
            route = 0.0
        rows["_regime"] = (self.regime_codes[label], route, j)

    def _vol_vote(self, pos: int, o: float, c: float, v: float) -> float:
        x = float(np.log1p(np.float64(v)))
        if pos == 0:
            z = NAN
        else:
            prev = self._prev_logv
            mean, sd = self._vol_mean.update(prev), self._vol_sd.update(prev)
            z = (x - mean) / sd if sd > 0 else NAN
        self._prev_logv = x
        if z != z:
            return NAN
        d = c - o
        return min(max(z / 3.0, -1.0), 1.0) * (1.0 if d > 0 else (-1.0 if d < 0 else 0.0))

    def step(self, ts_ms: int, o: float, h: float, lo: float, c: float, v: float) -> dict[str, float]:
        pos, close_ms = self._advance(ts_ms, o, h, lo, c, v)
        ready = True
        rows = []
        out: dict[str, float] = {}
        for s in self._setups:
            r = s.row(pos, close_ms)
            rows.append(r)
            ready = ready and r[5]
            if s.name == "trend":
                out["mtf"] = r[6]
        held = self.rtf.held.held(close_ms)
        reg = held.get("_regime") if held is not None else None
        regime = reg[0] if reg is not None else 0.0
        ready = ready and regime > 0 and reg is not None and reg[2] >= self.route_warm and pos >= self.warmup
        route = reg[1] if (ready and reg is not None) else 0.0
        signal = exits = 0.0
        for code, (sig, agree, el, es, atr, _r, _vm), (bl, bs), s in zip(self._codes, rows, self._bits, self._setups,
                                                                          strict=True):
            if ready and route == code and sig != 0:
                signal = sig * (10 * code + agree)
            exits += bl * (el == 1.0) + bs * (es == 1.0)
            out[f"{_PREFIX[s.name]}_atr"] = atr
        out.update(ready=1.0 if ready else 0.0, regime=regime, route=route, signal=signal, exits=exits,
                   vol_vote=self._vol_vote(pos, o, c, v))
        return out


_PREFIX = {"oscillation": "osc", "breakout": "brk", "trend": "trd"}
