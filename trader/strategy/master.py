"""The master strategy: each pair trades the setup of its market regime, through the fusion layer.

Per pair and feed bar (``compute_indicators``, causal, so the backtest and the live feed compute the same columns):
- the regime of the analyzer (trader.analysis: ``analyze_timeframe`` → ``regime_series`` on ``regime_timeframe``
  bars, default 1h: ranging / trending / volatile / breakout, ``unknown`` while warming up), read by close time;
- the route, with hysteresis so it does not flap: a new regime takes over only after ``regime_confirm``
  consecutive regime bars (a breakout, an event that rarely lasts, after one); blips never switch it, and a regime
  that flaps with nothing confirmed for ``regime_memory`` bars stands aside. ranging → oscillation, trending → trend, breakout → breakout, volatile →
  ``volatile_route`` (default: no new entries — wide ranges are where 2 % risk at tight stops gets run over);
- the three setups' columns (signal, grading agreement, exits, ATR), and the market-state votes the fusion reads:
  ``mtf`` (mean SMA-stack direction of 15m/1h/4h) and ``vol_vote`` (the signal bar's volume surprise, signed by the
  bar's direction).

At a routed signal ``next`` grades it (managed.py), asks the fusion book (fusion.py: Beta posteriors of each
source's hit rate in this regime) for the fused score and enters only when the score leans the signal's way by at
least ``fusion_threshold``, at a size scaled by that lean. A position keeps the exits of the setup that opened it,
whatever the route does afterwards. When it closes, the sources that voted are scored and the book is saved
(``fusion_path``; in memory when empty).

For display: ``MasterStrategy.status()`` on the running instance (``LiveEngine.strategy``) and
``fusion.fusion_table(path)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import backtrader as bt
import numpy as np

from trader.analysis.analyzer import AnalyzerConfig, analyze_timeframe
from trader.analysis.bars import Bars
from trader.analysis.features import FeatureParams, rolling_zscore_prior
from trader.analysis.incremental import RegimeStream
from trader.analysis.regime import REGIMES, UNKNOWN
from trader.data.timeframes import timeframe_ms
from trader.optimize.spaces import Categorical, Dimension, FloatRange, IntRange
from trader.strategy.base import Candles
from trader.strategy.fusion import FusionBook, get_ml_provider
from trader.strategy.incremental import MasterStream
from trader.strategy.managed import (
    BRK_PARAMS,
    BRK_SPACES,
    COMMON_PARAMS,
    COMMON_SPACES,
    OSC_PARAMS,
    OSC_SPACES,
    TRD_PARAMS,
    TRD_SPACES,
    Candidate,
    GradePlan,
    ManagedStrategy,
    _Pos,
    bt_ms,
)
from trader.strategy.multitf import base_ms, check_timeframes, held, index_on_base, to_tf
from trader.strategy.setups import SETUPS, base_columns
from trader.strategy.strategies import prefixed

REGIME_CODES = {UNKNOWN: 0.0, **{r: float(i + 1) for i, r in enumerate(REGIMES)}}  # ranging 1 … breakout 4
REGIME_NAMES = {v: k for k, v in REGIME_CODES.items()}
ROUTE_NAMES = {0.0: "none", 1.0: "oscillation", 2.0: "breakout", 3.0: "trend"}
_ROUTE_CODE = {v: k for k, v in ROUTE_NAMES.items()}
EXIT_BITS = {"oscillation": (1, 2), "breakout": (4, 8), "trend": (16, 32)}  # (long exit, short exit)
_ROUTE_OF_REGIME = {"ranging": "oscillation", "trending": "trend", "breakout": "breakout"}

MASTER_PARAMS: tuple[tuple[str, Any], ...] = (
    ("regime_timeframe", "1h"),
    ("regime_percentile_window", 144),  # regime-timeframe bars the ATR / Bollinger-width percentiles rank over
    ("regime_confirm", 2),
    ("regime_memory", 24),  # regime bars a confirmed regime keeps the route while labels flap
    ("volatile_route", "none"),  # none | oscillation | breakout | trend
    ("fusion_path", ""),
    ("fusion_decay", 0.98),
    ("fusion_threshold", 0.2),
    ("volume_window", 96),
)


def regime_config(p: Mapping[str, Any]) -> AnalyzerConfig:
    return AnalyzerConfig(timeframes=(str(p["regime_timeframe"]),), grid_timeframe=str(p["regime_timeframe"]),
                          regime_timeframe=str(p["regime_timeframe"]), pattern_timeframes=(), template_timeframes=(),
                          features=replace(FeatureParams(), percentile_window=int(p["regime_percentile_window"])))


def regime_warm(p: Mapping[str, Any]) -> int:
    """Regime-timeframe bars before the regime counts: the percentile window over ATR(14), and the analyzer's
    slow EMA (50) three times over so it has settled."""
    return max(int(p["regime_percentile_window"]) + int(p["atr_period"]) + 1, 150) + 1


class Hysteresis:
    """The route state machine of ``hysteresis``, one regime label at a time (the live feed's incremental path)."""

    def __init__(self, confirm: int, memory: int, volatile_route: str) -> None:
        self.confirm, self.memory = confirm, memory
        self.route_of = {**_ROUTE_OF_REGIME, "volatile": volatile_route}
        self.run, self.prev, self.i = 0, None, -1
        self.last_label: str | None = None
        self.last_at = -10**9

    def step(self, r: str) -> float:
        self.i += 1
        i = self.i
        self.run = self.run + 1 if r == self.prev else 1
        self.prev = r
        if r == UNKNOWN:
            self.last_label, self.last_at = None, -10**9
        elif self.run >= (1 if r == "breakout" else self.confirm):
            self.last_label, self.last_at = r, i
        if self.last_label is not None and i - self.last_at < self.memory:
            return _ROUTE_CODE[self.route_of.get(self.last_label, "none")]
        return 0.0


def hysteresis(raw: np.ndarray, confirm: int, memory: int, volatile_route: str) -> np.ndarray:
    """Route codes per regime bar from raw regime labels, with hysteresis of finite memory.

    A regime counts once it has held ``confirm`` consecutive bars (a breakout, an event, from its first bar); the
    route is the setup of the latest bar that sits in such a confirmed run, so a one-bar blip never switches it. If
    no run was confirmed within the last ``memory`` bars the regime is flapping and the route is none. Causal, and
    it reads only the last ``memory + confirm`` labels, so a live window computes the same route as a backtest."""
    h = Hysteresis(confirm, memory, volatile_route)
    return np.array([h.step(r) for r in raw], dtype=float)


class MasterStrategy(ManagedStrategy):
    _setups = ("oscillation", "breakout", "trend")
    params = COMMON_PARAMS + OSC_PARAMS + BRK_PARAMS + TRD_PARAMS + MASTER_PARAMS
    # Few lines on purpose: Backtrader advances every line of every feed on every bar, and that, not the strategy,
    # was most of the run time. ``signal`` = side × (10·route + agreeing timeframes) of the routed setup; ``exits``
    # = bit mask of the setups' exit events (EXIT_BITS).
    indicator_lines: ClassVar[tuple[str, ...]] = (
        "ready", "regime", "route", "signal", "exits", "osc_atr", "brk_atr", "trd_atr", "mtf", "vol_vote")
    spaces: ClassVar[dict[str, tuple[Dimension, ...]]] = {
        **COMMON_SPACES,
        "buy": OSC_SPACES["buy"] + BRK_SPACES["buy"] + TRD_SPACES["buy"],
        "sell": OSC_SPACES["sell"] + BRK_SPACES["sell"] + TRD_SPACES["sell"],
        "regime": (IntRange("regime_confirm", 1, 4, step=1), IntRange("regime_memory", 12, 48, step=12),
                   Categorical("volatile_route", ("none", "breakout", "oscillation"))),
        "fusion": (FloatRange("fusion_threshold", 0.0, 0.5, step=0.1), FloatRange("fusion_decay", 0.95, 1.0, step=0.01)),
    }

    @classmethod
    def warmup_for(cls, params: Mapping[str, Any], feed_tf: str) -> int:
        feed = timeframe_ms(feed_tf)
        rtf = timeframe_ms(str(params["regime_timeframe"]))
        return max(super().warmup_for(params, feed_tf),
                   (regime_warm(params) + int(params["regime_memory"]) + int(params["regime_confirm"]) + 2)
                   * rtf // feed)

    @classmethod
    def compute_indicators(cls, candles: Candles, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        n = len(candles.close)
        feed = base_ms(candles.ts_ms)
        out: dict[str, np.ndarray] = {}
        cache: dict = {}
        ready = np.ones(n, dtype=bool)
        for s in cls.setups():
            cols = base_columns(s, candles, params, cache, who=cls.__name__)
            ready &= cols["ready"] == 1.0
            out.update(prefixed(s.prefix, cols))
            if s.name == "trend":
                out["mtf"] = cols["vote_mean"]
        if feed is None:
            out.update(ready=np.zeros(n), regime=np.zeros(n), route=np.zeros(n), vol_vote=np.full(n, np.nan))
            return out
        rtf = str(params["regime_timeframe"])
        check_timeframes({"regime timeframe": rtf}, feed, cls.__name__)
        rb = cache.get(rtf) or to_tf(candles, feed, rtf)
        close_ms = np.asarray(candles.ts_ms, dtype="int64") + feed
        idx = index_on_base(close_ms, rb)
        if len(rb):
            bars = Bars(rtf, rb.ts_ms, rb.open, rb.high, rb.low, rb.close, rb.volume)
            labels = analyze_timeframe(bars, regime_config(params)).regime
            labels[: regime_warm(params)] = UNKNOWN
            codes = np.array([REGIME_CODES[x] for x in labels])
            routes = hysteresis(labels, int(params["regime_confirm"]), int(params["regime_memory"]),
                                str(params["volatile_route"]))
            # A route reads up to memory + confirm labels back: none until all of those are warm.
            routes[: regime_warm(params) + int(params["regime_memory"]) + int(params["regime_confirm"])] = 0.0
        else:
            codes = routes = np.empty(0)
        regime = np.nan_to_num(held(codes, idx), nan=0.0)
        ready &= (regime > 0) & (held(np.arange(len(rb), dtype=float), idx) >= regime_warm(params)
                                 + int(params["regime_memory"]) + int(params["regime_confirm"]))
        ready[: cls.warmup_for(params, f"{feed // 60_000}m")] = False
        route = np.where(ready, np.nan_to_num(held(routes, idx), nan=0.0), 0.0)
        # Signed volume surprise of the feed bar: z of log volume against the prior baseline, / 3, clipped.
        z = rolling_zscore_prior(np.log1p(np.asarray(candles.volume, dtype="float64")), int(params["volume_window"]))
        with np.errstate(invalid="ignore"):
            vol_vote = np.clip(z / 3.0, -1.0, 1.0) * np.sign(candles.close - candles.open)
        signal = np.zeros(n)
        exits = np.zeros(n)
        for code, name in ROUTE_NAMES.items():
            if not code:
                continue
            pre = SETUPS[name].prefix
            here = ready & (route == code) & (out[f"{pre}_signal"] != 0)
            signal[here] = out[f"{pre}_signal"][here] * (10 * code + out[f"{pre}_agree"][here])
            bl, bs = EXIT_BITS[name]
            exits += bl * (out.pop(f"{pre}_exit_long") == 1.0) + bs * (out.pop(f"{pre}_exit_short") == 1.0)
            del out[f"{pre}_signal"], out[f"{pre}_agree"]
        out.update(ready=ready.astype(float), regime=regime, route=route, vol_vote=vol_vote, signal=signal,
                   exits=exits)
        return out

    @classmethod
    def indicator_stream(cls, params: Mapping[str, Any], feed_ms: int) -> MasterStream:
        """``compute_indicators``'s columns one feed bar at a time (the live feed's path: O(1) per candle instead of
        the whole window again; equal values, tests/strategy/test_incremental.py)."""
        p = cls.param_values(params)
        needed = {"regime timeframe": str(p["regime_timeframe"])}
        for s in cls.setups():
            sig, grade = s.timeframes(p)
            needed.update({f"{s.name} signal": sig, **{f"{s.name} grading #{i + 1}": t for i, t in enumerate(grade)}})
        check_timeframes(needed, feed_ms, cls.__name__)
        cfg = regime_config(p)
        return MasterStream(
            [SETUPS[s] for s in cls._setups], p, feed_ms, regime_warm=regime_warm(p),
            warmup=cls.warmup_for(p, f"{feed_ms // 60_000}m"), route_codes=_ROUTE_CODE, regime_codes=REGIME_CODES,
            exit_bits=EXIT_BITS,
            hysteresis=Hysteresis(int(p["regime_confirm"]), int(p["regime_memory"]), str(p["volatile_route"])),
            regime=RegimeStream(cfg.indicators, cfg.features, cfg.regime))

    # --- decisions -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.book = FusionBook.load(self.p.fusion_path or None, decay=float(self.p.fusion_decay))
        self._sig_lines = {d: (d.lines.signal, d.lines.ready, d.lines.exits) for d in self.datas}
        self._by_route = {code: SETUPS[name] for code, name in ROUTE_NAMES.items() if code}
        self._pending: dict[Any, tuple[str, dict[str, float]]] = {}

    def _candidate(self, d: bt.DataBase) -> Candidate | None:
        sig, ready, _exits = self._sig_lines[d]
        s = sig[0]
        if s == 0.0:
            if ready[0] != 1.0 and d._name not in self._cold_noted:
                self._note_cold(d)
            return None
        a = int(abs(s))
        return Candidate(1 if s > 0 else -1, self._by_route[float(a // 10)], a % 10)

    def _exit_now(self, d: bt.DataBase, st: _Pos) -> bool:
        bits = int(self._sig_lines[d][2][0])
        bl, bs = EXIT_BITS[st.setup.name] if st.setup else (0, 0)
        return bool(bits & (bl if st.side > 0 else bs))

    def votes(self, d: bt.DataBase, cand: Candidate) -> dict[str, float]:
        v = {"technical": cand.side * min(1.0, 0.25 + 0.25 * cand.agree),
             "mtf": float(d.lines.mtf[0]), "volume": float(d.lines.vol_vote[0])}
        prob = self.ml_confirms(d, cand.side) if (self.p.ml_provider or get_ml_provider()) else None
        if prob is not None:
            v["ml"] = cand.side * (2.0 * prob - 1.0)
        return {k: x for k, x in v.items() if math.isfinite(x)}

    def size_factor(self, d: bt.DataBase, cand: Candidate, plan: GradePlan) -> float | None:
        regime = REGIME_NAMES.get(float(d.lines.regime[0]), UNKNOWN)
        votes = self.votes(d, cand)
        fused = self.book.fuse(regime, votes)
        lean = cand.side * fused.score if math.isfinite(fused.score) else -1.0
        at = bt_ms(d.datetime[0]) + self._feed_ms(d)
        taken = lean >= self.p.fusion_threshold
        self.last_signal[d._name] = {"at_ms": at, "side": cand.side, "setup": cand.setup.name, "grade": plan.grade,
                                     "regime": regime, "score": fused.score, "weights": fused.weights,
                                     "votes": votes, "taken": taken}
        if not taken:
            return None
        self._pending[d] = (regime, votes)
        return min(1.0, 0.5 + lean)

    def risk_context(self, d: bt.DataBase, setup: Any = None) -> tuple[float, str]:
        vol, _none = super().risk_context(d, setup)
        return vol, REGIME_NAMES.get(float(d.lines.regime[0]), UNKNOWN) if len(d) else UNKNOWN

    def _entered(self, d: bt.DataBase, st: _Pos, cand: Candidate) -> None:
        st.regime, st.votes = self._pending.pop(d, (UNKNOWN, {}))

    def _closed(self, d: bt.DataBase, st: _Pos) -> None:
        if not st.votes:
            return
        outcome = st.side if st.realized > 0 else -st.side
        self.book.update(st.regime, st.votes, outcome, at_ms=bt_ms(d.datetime[0]) + self._feed_ms(d))

    # --- display ---------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per pair: regime, route, last graded signal (and whether fusion took it), open position's setup and
        grade, the model's newest prediction, recent patterns; plus the fusion weights. Read-only; called on the
        between Backtrader's passes."""
        pairs = {}
        for d in self.datas:
            row = self.pair_status(d)
            row["regime"] = REGIME_NAMES.get(float(d.lines.regime[0]), UNKNOWN) if len(d) else UNKNOWN
            row["route"] = ROUTE_NAMES.get(float(d.lines.route[0]), "none") if len(d) else "none"
            pairs[d._name] = row
        return {"pairs": pairs, "fusion": self.book.table()}
