"""The screening twin of the single-setup strategies (oscillation, breakout, trend: trader/strategy/strategies.py on
``ManagedStrategy``, trader/strategy/managed.py).

Columns come from the strategy class's own ``compute_indicators`` (the setup's multi-timeframe signal, agreement
count, exit events and ATR). The entry is ``ManagedStrategy._enter`` step for step on the same functions: the risk
book's ``slot_free``, the grade (``agree``; grade 3 needs an ML model, and a run with one falls back to
Backtrader — see ``twin_for``), ``plan`` (the strategy's own method, called unbound on the parameters), the size
through ``size_entry`` with the setup's ATR rank, the take-profit split. The kernel (``MODE_MANAGED``) runs the
position: time stop at the grade's horizon, the setup's exit signal, break-even when tighter after the first
target, ATR trailing (from the fill for a breakout, after the first target for a trend).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from trader.model.instruments import InstrumentSpec
from trader.risk.book import RiskBook
from trader.screening.reference import EntryOrder, _Line, refused, settle_book
from trader.strategy.base import split_take_profits
from trader.strategy.managed import Candidate, ManagedStrategy
from trader.strategy.setups import SETUPS
from trader.strategy.sizing import size_entry, stop_distance, vol_rank


def ml_in_play(params: Mapping[str, Any]) -> bool:
    """Grade 3 asks an ML model: with one set (parameter or process-wide provider) the twin cannot answer."""
    from trader.strategy.fusion import get_ml_provider

    return params.get("ml_provider") is not None or get_ml_provider() is not None


class ManagedSession:
    mode = 1.0  # kernel.MODE_MANAGED

    def __init__(self, strategy: type[ManagedStrategy], params: Mapping[str, Any], spec: InstrumentSpec,
                 leverage: int, pair: str, ts: np.ndarray, bar_ms: int, close: np.ndarray,
                 ind: Mapping[str, np.ndarray], book: RiskBook) -> None:
        self.cls = strategy
        self.setup = SETUPS[strategy._setup]
        pre = self.setup.prefix
        self.p = params
        self.spec = spec
        self.leverage = leverage
        self.pair = pair
        self.ts = ts
        self.bar_ms = bar_ms
        self.close = close
        self.signal = np.asarray(ind[f"{pre}_signal"], dtype="float64")
        self.agree = np.asarray(ind[f"{pre}_agree"], dtype="float64")
        self.atr = np.asarray(ind[f"{pre}_atr"], dtype="float64")
        self.rows = (self.signal, self.atr, np.asarray(ind[f"{pre}_exit_long"], dtype="float64"),
                     np.asarray(ind[f"{pre}_exit_short"], dtype="float64"))
        self.book = book
        self.pending = False
        self.trades_at_entry = 0
        self.refused_at = -1
        self.refused_seq = 0.0
        # ``plan`` reads only ``self.p``: called unbound on the parameters, it is the strategy's own rule.
        self._as_strategy = SimpleNamespace(p=SimpleNamespace(**params))
        name = self.setup.name
        self.trail_mult = (float(params["brk_trail_atr"]) if name == "breakout" else
                           float(params["trd_trail_atr"]) if name == "trend" else 0.0)

    def settle(self, closed: list[tuple[float, float]]) -> None:
        if not self.pending:
            return
        settle_book(self.book, self.pair, closed)
        self.pending = False

    def decide(self, i: int, side: int, wallet: float, available: float, free: float,
               mark: float) -> EntryOrder | None:
        p = self.p
        spec, lev = self.spec, self.leverage
        cand = Candidate(side, self.setup, int(self.agree[i]))
        if not self.book.slot_free(self.pair, side):
            return None
        grade = 2 if cand.agree >= 2 else 1  # 3 only with an ML model, which sends the run to Backtrader
        plan = ManagedStrategy.plan(self._as_strategy, cand, grade)
        ref = float(self.close[i])
        atr = float(self.atr[i])
        dist = stop_distance(lev, atr, ref, p["atr_multiplier"], p["stop_leverage_factor"])
        dist = max(dist, min(p["min_stop_distance"], p["stop_leverage_factor"] / lev))
        base = p["risk_per_trade"] * 1.0 * plan.size * min(1.0, 1.0)  # risk_scale() 1.0, size_factor() 1.0
        vol = vol_rank(_Line(self.atr, i), _Line(self.close, i), int(p["volatility_window"]))
        size, _decision = size_entry(self.book, wallet, available, self.pair, side, ref, dist, spec, lev, base,
                                     p["taker_fee"], vol, "unknown")
        if size.qty <= 0:
            return None
        qty = size.qty
        self.pending = True
        if refused(spec, lev, side, qty, ref, mark, free):
            self.refused_at = i
            return None
        stop = ref * (1 - side * dist)
        tps: list[tuple[float, float]] = []
        if plan.tp_moves:
            qtys = split_take_profits(qty, plan.tp_shares, spec)
            tps = [(ref * (1 + side * m), q) for m, q in zip(plan.tp_moves, qtys, strict=True)]
        return EntryOrder(side, qty, spec.round_price(stop),
                          np.array([spec.round_price(px) for px, _ in tps], dtype="float64"),
                          np.array([q for _, q in tps], dtype="float64"), self.trail_mult,
                          trail_on_fill=self.setup.name == "breakout", hold_ms=float(plan.hold_ms))
