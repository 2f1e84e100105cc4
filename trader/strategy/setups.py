"""The three trading setups as pure, vectorised functions of one timeframe's closed bars, and their translation to
the feed's (base) bars.

- oscillation (1–5m): RSI at an extreme while the bar touches the Bollinger band on the same side; exits on the
  reverse RSI cross (RSI back through ``osc_rsi_exit`` / its mirror) or a +0.5–1 % target.
- breakout (15m–1h): the close beyond the prior ``brk_lookback``-bar high/low on volume ≥ ``brk_volume_mult`` × the
  prior average volume; exits by an ATR trailing stop (and the opposite breakout).
- trend (1–4h): three simple moving averages stacked (fast > mid > slow for longs); entry on a pullback that touches
  the middle average or the prior swing support and closes back above the middle average on an up bar; exits on
  reversal (fast crosses the middle average, or the close crosses the slow one) or by tiered profit.

Each setup also gives a *vote* per bar of any timeframe (does this timeframe lean the same way?) — the grade counts
the timeframes whose vote agrees with the firing signal (grading.py / ``base_columns``).

Simple moving averages and rolling extremes have finite memory, so a live rolling window reproduces the backtest's
value exactly; RSI/ATR (Wilder) are given three periods to settle before a bar counts as warm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import talib

from trader.data.timeframes import timeframe_ms
from trader.strategy.base import Candles
from trader.strategy.multitf import TfBars, base_ms, check_timeframes, fresh, held, index_on_base, to_tf

Array = np.ndarray
P = Mapping[str, Any]


def _prev(x: Array) -> Array:
    out = np.full_like(x, np.nan)
    out[1:] = x[:-1]
    return out


def _cross_up(x: Array, level: float) -> Array:
    p = _prev(x)
    with np.errstate(invalid="ignore"):
        return ((p < level) & (x >= level)).astype(float)


def _cross_down(x: Array, level: float) -> Array:
    p = _prev(x)
    with np.errstate(invalid="ignore"):
        return ((p > level) & (x <= level)).astype(float)


def _last_event(sig: Array, within: int) -> Array:
    """The latest nonzero value of ``sig`` within the last ``within`` bars (including this one), else 0."""
    n = len(sig)
    out = np.zeros(n)
    nz = np.flatnonzero(np.nan_to_num(sig) != 0)
    if not len(nz):
        return out
    j = np.searchsorted(nz, np.arange(n), side="right") - 1
    ok = (j >= 0) & (np.arange(n) - nz[np.maximum(j, 0)] < within)
    out[ok] = sig[nz[j[ok]]]
    return out


# --- oscillation -----------------------------------------------------------------------------------------------
def oscillation(b: TfBars, p: P) -> dict[str, Array]:
    c = b.close
    rsi = talib.RSI(c, timeperiod=int(p["osc_rsi_period"]))
    upper, _mid, lower = talib.BBANDS(c, timeperiod=int(p["osc_bb_period"]), nbdevup=float(p["osc_bb_dev"]),
                                      nbdevdn=float(p["osc_bb_dev"]))
    atr = talib.ATR(b.high, b.low, c, timeperiod=int(p["atr_period"]))
    lo_, hi_ = float(p["osc_rsi_low"]), float(p["osc_rsi_high"])
    with np.errstate(invalid="ignore"):
        sig = np.where((rsi < lo_) & (b.low <= lower), 1.0, np.where((rsi > hi_) & (b.high >= upper), -1.0, 0.0))
        slack = float(p["osc_vote_slack"])
        vote = np.where(rsi <= lo_ + slack, 1.0, np.where(rsi >= hi_ - slack, -1.0, 0.0))
    x = float(p["osc_rsi_exit"])
    warm = ~(np.isnan(rsi) | np.isnan(upper) | np.isnan(atr))
    return {"signal": sig, "vote": vote, "exit_long": _cross_up(rsi, x), "exit_short": _cross_down(rsi, 100.0 - x),
            "atr": atr, "warm": warm}


def oscillation_warm(p: P) -> int:
    return max(3 * int(p["osc_rsi_period"]), int(p["osc_bb_period"]), 3 * int(p["atr_period"])) + 1


# --- breakout --------------------------------------------------------------------------------------------------
def breakout(b: TfBars, p: P) -> dict[str, Array]:
    n = int(p["brk_lookback"])
    c = b.close
    prior_hi = _prev(talib.MAX(b.high, timeperiod=n))
    prior_lo = _prev(talib.MIN(b.low, timeperiod=n))
    prior_vol = _prev(talib.SMA(b.volume, timeperiod=n))
    atr = talib.ATR(b.high, b.low, c, timeperiod=int(p["atr_period"]))
    with np.errstate(invalid="ignore"):
        loud = b.volume >= float(p["brk_volume_mult"]) * prior_vol
        sig = np.where((c > prior_hi) & loud, 1.0, np.where((c < prior_lo) & loud, -1.0, 0.0))
        beyond = np.where(c > prior_hi, 1.0, np.where(c < prior_lo, -1.0, 0.0))
    warm = ~(np.isnan(prior_hi) | np.isnan(prior_vol) | np.isnan(atr))
    beyond[~warm] = 0.0
    # The opposite breakout (without the volume condition) ends a position the trailing stop has not.
    return {"signal": sig, "vote": _last_event(beyond, n), "exit_long": (beyond < 0).astype(float),
            "exit_short": (beyond > 0).astype(float), "atr": atr, "warm": warm}


def breakout_warm(p: P) -> int:
    return max(int(p["brk_lookback"]) + 1, 3 * int(p["atr_period"])) + 1


# --- trend -----------------------------------------------------------------------------------------------------
def trend(b: TfBars, p: P) -> dict[str, Array]:
    c = b.close
    f = talib.SMA(c, timeperiod=int(p["trd_fast"]))
    m = talib.SMA(c, timeperiod=int(p["trd_mid"]))
    s = talib.SMA(c, timeperiod=int(p["trd_slow"]))
    k = int(p["trd_support_lookback"])
    support = _prev(talib.MIN(b.low, timeperiod=k))
    resistance = _prev(talib.MAX(b.high, timeperiod=k))
    atr = talib.ATR(b.high, b.low, c, timeperiod=int(p["atr_period"]))
    tol = float(p["trd_touch"])
    with np.errstate(invalid="ignore"):
        up = (f > m) & (m > s)
        down = (f < m) & (m < s)
        touch_long = (b.low <= m * (1 + tol)) | (b.low <= support * (1 + tol))
        touch_short = (b.high >= m * (1 - tol)) | (b.high >= resistance * (1 - tol))
        long_ = up & touch_long & (c > m) & (c > b.open)
        short = down & touch_short & (c < m) & (c < b.open)
        sig = np.where(long_, 1.0, np.where(short, -1.0, 0.0))
        vote = np.where(up, 1.0, np.where(down, -1.0, 0.0))
        exit_long = ((f < m) | (c < s)).astype(float)
        exit_short = ((f > m) | (c > s)).astype(float)
    warm = ~(np.isnan(s) | np.isnan(support) | np.isnan(atr))
    return {"signal": sig, "vote": vote, "exit_long": exit_long, "exit_short": exit_short, "atr": atr, "warm": warm}


def trend_warm(p: P) -> int:
    return max(int(p["trd_slow"]), int(p["trd_support_lookback"]) + 1, 3 * int(p["atr_period"])) + 1


@dataclass(frozen=True)
class Setup:
    name: str
    prefix: str  # parameter prefix, shared by the standalone strategy and the master
    compute: Callable[[TfBars, P], dict[str, Array]]
    warm: Callable[[P], int]  # bars of its own timeframe before a value counts

    def timeframes(self, p: P) -> tuple[str, tuple[str, ...]]:
        """(signal timeframe, grading timeframes) from the parameters."""
        sig = str(p[f"{self.prefix}_timeframe"])
        grade = tuple(t for t in str(p[f"{self.prefix}_grade_timeframes"]).split(",") if t)
        return sig, grade

    def warmup_bars(self, p: P, feed_tf_ms: int) -> int:
        """Feed bars before every timeframe of this setup is warm at its latest closed bar."""
        sig, grade = self.timeframes(p)
        return max((self.warm(p) + 2) * timeframe_ms(tf) // feed_tf_ms
                   for tf in (sig, *grade))


SETUPS: dict[str, Setup] = {
    "oscillation": Setup("oscillation", "osc", oscillation, oscillation_warm),
    "breakout": Setup("breakout", "brk", breakout, breakout_warm),
    "trend": Setup("trend", "trd", trend, trend_warm),
}


def base_columns(setup: Setup, c: Candles, p: P, cache: dict[str, TfBars] | None = None,
                 who: str = "") -> dict[str, Array]:
    """The setup on the feed's bars: ``signal`` (fires once, on the feed bar that closes the signal-timeframe bar),
    ``agree`` (how many grading timeframes' latest closed votes point the signal's way, the signal timeframe
    included; 0 without a signal), ``exit_long``/``exit_short`` (events at signal-timeframe closes), ``atr`` (the
    signal timeframe's, held) and ``ready`` (1 where every timeframe is warm and the feed has held the warm-up:
    nothing is decided on a half-warm indicator)."""
    n = len(c.close)
    feed = base_ms(c.ts_ms)
    nan = np.full(n, np.nan)
    if feed is None:
        return {"signal": np.zeros(n), "agree": np.zeros(n), "exit_long": np.zeros(n), "exit_short": np.zeros(n),
                "atr": nan, "ready": np.zeros(n), "vote_mean": nan}
    sig_tf, grade_tfs = setup.timeframes(p)
    check_timeframes({f"{setup.name} signal": sig_tf, **{f"{setup.name} grading #{i + 1}": t
                                                     for i, t in enumerate(grade_tfs)}},
                     feed, who or setup.name)
    cache = {} if cache is None else cache
    close_ms = np.asarray(c.ts_ms, dtype="int64") + feed
    ready = np.ones(n, dtype=bool)
    ready[: setup.warmup_bars(p, feed)] = False
    votes: list[Array] = []
    out: dict[str, Array] = {}
    for tf in dict.fromkeys((sig_tf, *grade_tfs)):
        bars = cache.get(tf)
        if bars is None:
            bars = cache[tf] = to_tf(c, feed, tf)
        r = setup.compute(bars, p)
        idx = index_on_base(close_ms, bars)
        w = held(r["warm"].astype(float), idx)
        ready &= w == 1.0
        if tf in grade_tfs:
            votes.append(held(r["vote"], idx))
        if tf == sig_tf:
            out["signal"] = fresh(r["signal"], idx, close_ms, bars)
            out["exit_long"] = fresh(r["exit_long"], idx, close_ms, bars)
            out["exit_short"] = fresh(r["exit_short"], idx, close_ms, bars)
            out["atr"] = held(r["atr"], idx)
            sig_vote = held(r["vote"], idx)
    sig = np.where(ready, out["signal"], 0.0)
    agree = np.zeros(n)
    if sig_tf not in grade_tfs:
        votes.append(sig_vote)
    for v in votes:
        agree += (v == sig) & (sig != 0)
    with np.errstate(invalid="ignore"):
        out["vote_mean"] = np.mean(np.vstack(votes), axis=0)  # NaN until every timeframe has voted
    out["signal"] = sig
    out["agree"] = np.where(sig != 0, np.maximum(agree, 1.0), 0.0)
    out["ready"] = ready.astype(float)
    return out


def warmup_for(setups: list[Setup], p: P, feed_tf: str) -> int:
    feed = timeframe_ms(feed_tf)
    return max(s.warmup_bars(p, feed) for s in setups)
