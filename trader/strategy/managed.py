"""What the oscillation, breakout, trend and master strategies share: signal grades and the position life cycle.

A strategy built on ``ManagedStrategy`` only computes columns (``compute_indicators``, causal, per feed bar) and
says which setup's signal to take on a bar (``_candidate``). This class then
- grades the signal (risk-rules.md / issue 13): grade 1 = one timeframe fires, 2 = two timeframes agree, 3 = three or
  more agree *and* an ML model confirms — with no model active grade 3 is never given;
- sizes it by the risk rules (2 % of the wallet at the stop, stop = min(0.8/leverage, k·ATR/entry) but not nearer
  than ``min_stop_distance``, max open trades, total loss-at-stop budget) times the grade's size multiplier;
- places the entry with its exchange stop and the grade's take-profit tiers (``open_position``);
- manages it: the setup's own exit signal, break-even after the first target, ATR trailing (from the entry for a
  breakout, after the first target otherwise) and the time stop of the signal's horizon.

The horizon is the signal timeframe's (risk-rules.md: 1–15 min signals 60 min, 30 min signals 4 h, 1–4 h signals
8 h) times the grade's holding factor. Nothing here knows whether it runs on history or live.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import backtrader as bt

from trader.data.timeframes import timeframe_ms
from trader.optimize.spaces import Dimension, FloatRange, IntRange
from trader.risk.limits import RISK_PARAMS
from trader.strategy.base import FuturesStrategy, split_take_profits
from trader.strategy.setups import SETUPS, Setup
from trader.strategy.sizing import size_entry, stop_distance, strategy_book, vol_rank

log = logging.getLogger(__name__)

_EPOCH_DAYS = 719163.0
_MS_PER_DAY = 86_400_000.0

# Shared by every managed strategy (risk-rules.md defaults). Setup parameters are prefixed osc_/brk_/trd_ so the
# master can carry all three sets under the same names the standalone strategies use.
COMMON_PARAMS: tuple[tuple[str, Any], ...] = (
    ("atr_period", 14),
    ("atr_multiplier", 2.0),
    ("stop_leverage_factor", 0.8),
    ("min_stop_distance", 0.006),
    # The account's risk rules (trader/risk): per trade, per coin, total budget, streak, drawdown, ...
    *RISK_PARAMS,
    ("taker_fee", 0.0005),
    ("trail_min_step", 0.001),
    ("tp_shares", (0.3, 0.3, 0.4)),
    # Take-profit tiers (price move from entry) per grade, inside the risk-rules ranges 0.5–1 / 1–3 / 3–10 %.
    ("g1_tp_moves", (0.005, 0.01, 0.03)),
    ("g2_tp_moves", (0.008, 0.02, 0.05)),
    ("g3_tp_moves", (0.01, 0.03, 0.10)),
    # Holding horizon = the signal timeframe's horizon × this factor.
    ("g1_hold", 1.0),
    ("g2_hold", 1.5),
    ("g3_hold", 2.0),
    # Size multiplier on the 2 % risk: a weaker signal risks less; never more than the per-trade rule.
    ("g1_size", 0.5),
    ("g2_size", 0.75),
    ("g3_size", 1.0),
    ("ml_confirm", 0.6),  # an ML prediction confirms (grade 3) at this probability of the signal's direction
    ("ml_provider", None),  # an object with predict(pair, at_ms, features) (fusion.MLProvider); None: the registry
    # Warm-up estimate for the runner (which calls warmup_bars without the feed's timeframe). The real warm-up
    # is enforced per bar in the ``ready`` column with the feed's actual timeframe.
    ("feed_timeframe", "5m"),
)

OSC_PARAMS: tuple[tuple[str, Any], ...] = (
    ("osc_timeframe", "5m"),
    ("osc_grade_timeframes", "5m,15m,1h"),
    ("osc_rsi_period", 14),
    ("osc_rsi_low", 25.0),
    ("osc_rsi_high", 75.0),
    ("osc_rsi_exit", 55.0),  # long exits when RSI crosses up through this, short through 100 − this
    ("osc_bb_period", 20),
    ("osc_bb_dev", 2.0),
    ("osc_vote_slack", 10.0),  # a timeframe votes long when its RSI ≤ rsi_low + slack
)
BRK_PARAMS: tuple[tuple[str, Any], ...] = (
    ("brk_timeframe", "30m"),
    ("brk_grade_timeframes", "30m,1h,4h"),
    ("brk_lookback", 20),
    ("brk_volume_mult", 1.5),
    ("brk_trail_atr", 2.0),
)
TRD_PARAMS: tuple[tuple[str, Any], ...] = (
    ("trd_timeframe", "1h"),
    ("trd_grade_timeframes", "15m,1h,4h"),
    ("trd_fast", 10),
    ("trd_mid", 20),
    ("trd_slow", 40),
    ("trd_support_lookback", 20),
    ("trd_touch", 0.002),
    ("trd_trail_atr", 1.5),
)

COMMON_SPACES: dict[str, tuple[Dimension, ...]] = {
    "stoploss": (FloatRange("atr_multiplier", 1.0, 3.0, step=0.5),
                 FloatRange("min_stop_distance", 0.004, 0.01, step=0.002)),
    "roi": (FloatRange("g2_tp_moves[0]", 0.005, 0.01, step=0.0025), FloatRange("g2_tp_moves[1]", 0.01, 0.03, step=0.005),
            FloatRange("g2_tp_moves[2]", 0.03, 0.10, step=0.01)),
    "grade": (FloatRange("g1_size", 0.25, 1.0, step=0.25), FloatRange("g2_hold", 1.0, 3.0, step=0.5)),
}
OSC_SPACES: dict[str, tuple[Dimension, ...]] = {
    "buy": (IntRange("osc_rsi_period", 7, 21, step=7), FloatRange("osc_rsi_low", 15.0, 35.0, step=5.0),
            FloatRange("osc_rsi_high", 65.0, 85.0, step=5.0), IntRange("osc_bb_period", 14, 30, step=8),
            FloatRange("osc_bb_dev", 1.5, 2.5, step=0.5)),
    "sell": (FloatRange("osc_rsi_exit", 50.0, 65.0, step=5.0),),
}
BRK_SPACES: dict[str, tuple[Dimension, ...]] = {
    "buy": (IntRange("brk_lookback", 10, 50, step=10), FloatRange("brk_volume_mult", 1.0, 3.0, step=0.5)),
    "sell": (FloatRange("brk_trail_atr", 1.0, 4.0, step=0.5),),
}
TRD_SPACES: dict[str, tuple[Dimension, ...]] = {
    "buy": (IntRange("trd_fast", 5, 20, step=5), IntRange("trd_mid", 20, 40, step=10),
            IntRange("trd_slow", 40, 100, step=20), FloatRange("trd_touch", 0.0, 0.006, step=0.002)),
    "sell": (FloatRange("trd_trail_atr", 1.0, 3.0, step=0.5),),
}


def horizon_ms(signal_tf: str) -> int:
    """The time stop of a signal of this timeframe (risk-rules.md): up to 15m → 60 min, 30m → 4 h, 1 h+ → 8 h."""
    t = timeframe_ms(signal_tf)
    if t <= 15 * 60_000:
        return 60 * 60_000
    if t < 60 * 60_000:
        return 4 * 3_600_000
    return 8 * 3_600_000


@dataclass(frozen=True)
class Candidate:
    side: int
    setup: Setup
    agree: int


@dataclass(frozen=True)
class GradePlan:
    grade: int
    tp_moves: tuple[float, ...]
    tp_shares: tuple[float, ...]
    hold_ms: int
    size: float


class _Pos:
    __slots__ = ("entry", "stop", "tps", "side", "entry_price", "risk", "stop_price", "trailing", "open_ms",
                 "hold_ms", "setup", "exiting", "grade", "realized", "votes", "regime", "exit_lines", "trail_mult")

    def __init__(self) -> None:
        self.entry: bt.Order | None = None
        self.stop: bt.Order | None = None
        self.tps: list[bt.Order] = []
        self.side = 0
        self.entry_price = 0.0
        self.risk = 0.0
        self.stop_price = 0.0
        self.trailing = False
        self.open_ms = 0
        self.hold_ms = 0
        self.setup: Setup | None = None
        self.exiting = False
        self.grade = 0
        self.realized = 0.0
        self.votes: dict[str, float] = {}
        self.regime = ""
        self.exit_lines: tuple[Any, Any, Any] | None = None
        self.trail_mult = 0.0


def bt_ms(x: float) -> int:
    return int(round((x - _EPOCH_DAYS) * _MS_PER_DAY))


class ManagedStrategy(FuturesStrategy):
    """Subclasses define ``params``, ``indicator_lines``, ``compute_indicators``, ``_setups`` and ``_candidate``."""

    _setups: ClassVar[tuple[str, ...]] = ()
    # ``next`` walks ``due_datas()`` in order and reads only the pair's own lines, the risk book (which observes
    # each pair's close as it is reached, as in the backtest's pass) and the account.
    decides_in_pair_order: ClassVar[bool] = True

    @classmethod
    def setups(cls) -> list[Setup]:
        return [SETUPS[s] for s in cls._setups]

    @classmethod
    def warmup_for(cls, params: Mapping[str, Any], feed_tf: str) -> int:
        """Feed bars before the first decision on a feed of ``feed_tf`` candles."""
        feed = timeframe_ms(feed_tf)
        return max(s.warmup_bars(params, feed) for s in cls.setups())

    @classmethod
    def warmup_bars(cls, params: Mapping[str, Any]) -> int:
        return cls.warmup_for(params, str(params["feed_timeframe"]))

    # --- life cycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._st = {d: _Pos() for d in self.datas}
        self._cold_noted: set[str] = set()
        self._lines = {d: {s.name: (getattr(d.lines, f"{s.prefix}_exit_long", None),
                                    getattr(d.lines, f"{s.prefix}_exit_short", None),
                                    getattr(d.lines, f"{s.prefix}_atr")) for s in self.setups()} for d in self.datas}
        self.risk = strategy_book(self)
        self._superseded: set[int] = set()  # refs of stops replaced by a new one (break-even, trailing)
        self.last_signal: dict[str, dict[str, Any]] = {}  # pair → the last graded signal (for /signals)

    def next(self) -> None:
        risk = self.risk
        risk.see_wallet(self.account.wallet_balance())  # the drawdown rule's peak follows every bar
        for d in self.due_datas():
            risk.observe(d._name, bt_ms(d.datetime[0]) + self._feed_ms(d), d.close[0])
            st = self._st[d]
            if st.entry is not None:
                if self.getposition(d).size and not st.exiting:
                    self._manage(d, st)
                continue
            cand = self._candidate(d)
            if cand is not None:
                self._enter(d, cand)

    def _candidate(self, d: bt.DataBase) -> Candidate | None:
        raise NotImplementedError

    def _note_cold(self, d: bt.DataBase) -> None:
        """Once per pair: say what is missing when a bar arrives before the warm-up is complete."""
        name = d._name
        if name in self._cold_noted or len(d) < 2 or getattr(d, "bar_is_live", True) is False:
            return  # live, the preloaded history's first bars are cold by nature: judge from the first live bar
        self._cold_noted.add(name)
        p = self.param_values({k: getattr(self.p, k) for k in self.params._getkeys()})
        need = ", ".join(f"{s.name}: {s.timeframes(p)[0]} signal, {'/'.join(s.timeframes(p)[1])} grading" for s in
                         self.setups())
        log.info("%s %s: indicators not warm after %d bars (%s; warm-up %d bars of %s); no entries until they are",
                 type(self).__name__, name, len(d), need, self.warmup_for(p, str(self.p.feed_timeframe)),
                 self.p.feed_timeframe)

    # --- grading -------------------------------------------------------------------------------------------------
    def ml_confirms(self, d: bt.DataBase, side: int) -> float | None:
        """The active model's probability for ``side`` (None: no model active)."""
        from trader.strategy.fusion import get_ml_provider

        provider = self.p.ml_provider or get_ml_provider()
        if provider is None:
            return None
        feats = {name: float(getattr(d.lines, name)[0]) for name in d.lines.getlinealiases() if name != "datetime"}
        pred = provider.predict(d._name, bt_ms(d.datetime[0]) + self._feed_ms(d), feats)
        if pred is None:
            return None
        return pred.probability if pred.direction == side else 1.0 - pred.probability

    def ml_view(self, pair: str) -> dict[str, Any] | None:
        """The model's newest prediction for ``pair`` as plain data (a provider with ``view``, the live one), for
        /signals; None without a model or with a provider that keeps none."""
        from trader.strategy.fusion import get_ml_provider

        provider = self.p.ml_provider or get_ml_provider()
        view = getattr(provider, "view", None)
        if view is None:
            return None
        out = view(pair)
        reason = getattr(provider, "last_reason", {}).get(pair)
        return {**out, "abstained": reason} if out is not None and reason else out

    def grade(self, d: bt.DataBase, cand: Candidate) -> int:
        if cand.agree >= 3:
            prob = self.ml_confirms(d, cand.side)
            if prob is not None and prob >= self.p.ml_confirm:
                return 3
            return 2
        return 2 if cand.agree == 2 else 1

    def plan(self, cand: Candidate, grade: int) -> GradePlan:
        p = self.p
        moves = tuple(getattr(p, f"g{grade}_tp_moves"))
        shares = tuple(p.tp_shares)
        if cand.setup.name == "oscillation":
            moves, shares = (moves[0],), (1.0,)  # +0.5–1 %: one target, the whole position
        elif cand.setup.name == "breakout":
            moves, shares = (), ()  # the ATR trailing stop is the exit
        sig_tf = str(getattr(p, f"{cand.setup.prefix}_timeframe"))
        hold = int(horizon_ms(sig_tf) * float(getattr(p, f"g{grade}_hold")))
        return GradePlan(grade, moves, shares, hold, float(getattr(p, f"g{grade}_size")))

    def _feed_ms(self, d: bt.DataBase) -> int:
        return int(d._compression) * 60_000

    # --- entry ---------------------------------------------------------------------------------------------------
    def size_factor(self, d: bt.DataBase, cand: Candidate, plan: GradePlan) -> float | None:
        """A further multiplier (the master's fusion); None refuses the entry."""
        self.last_signal[d._name] = {"at_ms": bt_ms(d.datetime[0]) + self._feed_ms(d), "side": cand.side,
                                     "setup": cand.setup.name, "grade": plan.grade, "regime": None,
                                     "score": None, "weights": {}, "votes": {}, "taken": True}
        return 1.0

    # --- display ---------------------------------------------------------------------------------------------------
    def pair_status(self, d: bt.DataBase) -> dict[str, Any]:
        """One pair for /signals: readiness, the last graded signal, the open position, the model's newest
        prediction and recent chart patterns. Read-only; called between Backtrader's passes."""
        from trader.strategy.signal_view import recent_patterns

        st = self._st[d]
        ready = getattr(d.lines, "ready", None)
        return {
            "regime": None,  # a single setup has no regime view; the master fills it in
            "route": self._setups[0] if len(self._setups) == 1 else "none",
            "ready": bool(len(d) and ready is not None and ready[0] == 1.0),
            "last_signal": self.last_signal.get(d._name),
            "position": None if st.entry is None else {"setup": st.setup.name if st.setup else None,
                                                       "grade": st.grade, "side": st.side, "regime": st.regime},
            "ml": self.ml_view(d._name),
            "patterns": recent_patterns(d, self._feed_ms(d)) if len(d) else [],
        }

    def status(self) -> dict[str, Any]:
        """Per pair ``pair_status``; no fusion book (only the master fuses)."""
        return {"pairs": {d._name: self.pair_status(d) for d in self.datas}, "fusion": []}

    def _enter(self, d: bt.DataBase, cand: Candidate) -> None:
        if not self.risk.slot_free(d._name, cand.side):  # before grading: a full book needs no ML call
            return
        grade = self.grade(d, cand)
        plan = self.plan(cand, grade)
        extra = self.size_factor(d, cand, plan)
        if extra is None or extra <= 0:
            return
        acct = self.account
        spec = acct.instrument(d)
        ref = d.close[0]
        exit_long, exit_short, atr_line = self._lines[d][cand.setup.name]
        atr = atr_line[0]
        dist = stop_distance(acct.leverage, atr, ref, self.p.atr_multiplier, self.p.stop_leverage_factor)
        dist = max(dist, min(self.p.min_stop_distance, self.p.stop_leverage_factor / acct.leverage))
        if not getattr(d, "bar_is_live", True):
            return  # live, a historical bar's entry would be refused (live orders follow live bars): no decision
        wallet = acct.wallet_balance()
        base = self.p.risk_per_trade * acct.risk_scale() * plan.size * min(extra, 1.0)
        vol, regime = self.risk_context(d, cand.setup)
        size, _decision = size_entry(self.risk, wallet, acct.available_balance(), d._name, cand.side, ref, dist,
                                     spec, acct.leverage, base, self.p.taker_fee, vol, regime)
        if size.qty <= 0:
            return
        side = cand.side
        stop = ref * (1 - side * dist)
        tps = []
        if plan.tp_moves:
            qtys = split_take_profits(size.qty, plan.tp_shares, spec)
            tps = [(ref * (1 + side * m), q) for m, q in zip(plan.tp_moves, qtys, strict=True)]
        st = self._st[d]
        st.entry, st.stop, st.tps = self.open_position(d, side, size.qty, stop, tps)
        st.side = side
        st.exiting = False
        st.risk = size.qty * ref * dist / wallet
        st.stop_price = spec.round_price(stop)
        st.setup = cand.setup
        st.grade = grade
        st.hold_ms = plan.hold_ms
        st.open_ms = bt_ms(d.datetime[0]) + self._feed_ms(d)
        st.realized = 0.0
        st.exit_lines = (exit_long, exit_short, atr_line)
        st.trail_mult = float(self.p.brk_trail_atr) if cand.setup.name == "breakout" else (
            float(self.p.trd_trail_atr) if cand.setup.name == "trend" else 0.0)
        st.trailing = False
        self._entered(d, st, cand)

    def risk_context(self, d: bt.DataBase, setup: Setup | None = None) -> tuple[float, str]:
        """(ATR/price percentile rank of the setup's ATR, market regime) for the risk rules; the master reads the
        analyzer's regime, the single-setup strategies none."""
        s = setup or self.setups()[0]
        return vol_rank(self._lines[d][s.name][2], d.close, int(self.p.volatility_window)), "unknown"

    def _entered(self, d: bt.DataBase, st: _Pos, cand: Candidate) -> None:
        """Hook: the master records what the fusion saw."""

    # --- management ----------------------------------------------------------------------------------------------
    def _manage(self, d: bt.DataBase, st: _Pos) -> None:
        now = bt_ms(d.datetime[0]) + self._feed_ms(d)
        if now - st.open_ms >= st.hold_ms:
            st.exiting = True
            self.close_position(d, tag="time_stop")
            return
        if self._exit_now(d, st):
            st.exiting = True
            self.close_position(d, tag="exit_signal")
            return
        if st.trailing:
            self._trail(d, st, st.exit_lines[2][0])

    def _exit_now(self, d: bt.DataBase, st: _Pos) -> bool:
        exit_long, exit_short, _atr = st.exit_lines
        return (exit_long[0] if st.side > 0 else exit_short[0]) == 1.0

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        d = order.data
        st = self._st[d]
        tag = order.info.get("tag")
        if order is st.entry or (st.entry is not None and order.ref == st.entry.ref):
            if order.status == order.Completed:
                st.entry_price = order.executed.price
                if st.setup is not None and st.setup.name == "breakout" and st.trail_mult > 0:
                    st.trailing = True  # the breakout's exit is the trailing stop, from the start
            elif not order.alive():
                self.risk.cancelled(d._name)
                self._reset(st)
            return
        if order.ref in self._superseded:
            self._superseded.discard(order.ref)
            if order.status != order.Completed:
                # A replaced stop's cancellation (told at the next bar's start, perhaps after the new stop filled):
                # the position's end is told by its own orders, with the P&L of every fill (the loss streak).
                return
        if order.status == order.Completed and st.entry_price:
            st.realized += (order.executed.price - st.entry_price) * st.side * abs(order.executed.size)
        if tag == "tp1" and order.status == order.Completed:
            self._move_stop_to_breakeven(d, st)
            st.trailing = st.trail_mult > 0
        if not self.getposition(d).size and not order.alive():
            if st.entry is not None or d._name in self.risk.open:  # a forced entry's P&L is not followed: 0
                self.risk.closed(d._name, st.realized if st.entry is not None else 0.0,
                                 self.account.wallet_balance())
                if st.entry_price:
                    self._closed(d, st)
            self._reset(st)

    def _closed(self, d: bt.DataBase, st: _Pos) -> None:
        """Hook: a position went flat; ``st.realized`` is its price P&L (before fees and funding)."""

    @staticmethod
    def _reset(st: _Pos) -> None:
        st.entry = st.stop = None
        st.tps = []
        st.exiting = False
        st.risk = 0.0
        st.trailing = False
        st.entry_price = 0.0
        st.setup = None

    def _move_stop_to_breakeven(self, d: bt.DataBase, st: _Pos) -> None:
        pos = self.getposition(d)
        if not pos.size or st.stop is None:
            return
        spec = self.account.instrument(d)
        side = 1 if pos.size > 0 else -1
        be = spec.round_price(st.entry_price * (1 + side * 2 * self.p.taker_fee))
        if side * (be - st.stop_price) > 0:
            self._replace_stop(d, st, be, "stop_breakeven")

    def _trail(self, d: bt.DataBase, st: _Pos, atr: float) -> None:
        pos = self.getposition(d)
        if not pos.size or st.stop is None or not math.isfinite(atr) or atr <= 0:
            return
        side = 1 if pos.size > 0 else -1
        spec = self.account.instrument(d)
        candidate = spec.round_price(d.close[0] - side * st.trail_mult * atr)
        if side * (candidate - st.stop_price) > self.p.trail_min_step * d.close[0]:
            self._replace_stop(d, st, candidate, "stop_trail")

    def _replace_stop(self, d: bt.DataBase, st: _Pos, price: float, tag: str) -> None:
        pos = self.getposition(d)
        side = 1 if pos.size > 0 else -1
        self._superseded.add(st.stop.ref)
        self.cancel(st.stop)
        leave = self.sell if side > 0 else self.buy
        st.stop = leave(data=d, size=abs(pos.size), exectype=bt.Order.Stop, price=price, close_position=True, tag=tag)
        st.stop_price = price
