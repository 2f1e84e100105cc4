"""Screening runs: a ``BacktestRequest`` answered by the compiled kernel instead of Cerebro, with the same result
type (``BacktestResult``: trades as ``TradeRecord``, equity, metrics) so hyperopt, walk-forward folds and stress
runs can use either engine.

    data = prepare(request)                  # candles, mark ratio, funding, rules, segments: once per window
    result = run_screening(request, data)    # per parameter set: indicators + kernel, no file access

``twin_for(request)`` says whether a strategy has a screening twin for that request, and why not when it has none
(the caller then runs Backtrader and says so). Data preparation follows trader/backtest/runner.py: the same
data_prep functions, the same segments (a hole in the data splits the run, the wallet carries over, a position is
closed at the last close before the hole).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest import data_prep
from trader.backtest.broker import PairData, TradeRecord
from trader.backtest.runner import BacktestRequest, BacktestResult, new_run_id, resolve_strategy
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir
from trader.data.timeframes import timeframe_ms
from trader.model.instruments import InstrumentSpec
from trader.model.rules import resolve_rules
from trader.performance.metrics import compute_metrics
from trader.screening import kernel as K
from trader.screening.managed import ManagedSession, ml_in_play
from trader.screening.reference import ReferenceSession
from trader.screening.rules import bracket_array, decimals
from trader.strategy.base import Candles, FuturesStrategy
from trader.strategy.reference import RsiBollingerStrategy
from trader.strategy.strategies import BreakoutStrategy, OscillationStrategy, TrendStrategy

ENGINE_SCREENING = "screening"
ENGINE_BACKTRADER = "backtrader"


@dataclass(frozen=True)
class Twin:
    """What the kernel needs from a strategy: its indicators (the class's own) and a per-segment session that
    makes its entry decisions (``settle`` / ``decide``, see trader/screening/reference.py)."""

    strategy: type[FuturesStrategy]
    session: Callable[..., ReferenceSession | ManagedSession]
    tp_params: tuple[str, ...] = ("tp_moves",)  # take-profit tier parameters (the kernel tags three tiers)
    max_tp_tiers: int = 3


_GRADE_TPS = ("g1_tp_moves", "g2_tp_moves", "g3_tp_moves")
TWINS: dict[type[FuturesStrategy], Twin] = {
    RsiBollingerStrategy: Twin(RsiBollingerStrategy, ReferenceSession),
    OscillationStrategy: Twin(OscillationStrategy, ManagedSession, _GRADE_TPS),
    BreakoutStrategy: Twin(BreakoutStrategy, ManagedSession, _GRADE_TPS),
    TrendStrategy: Twin(TrendStrategy, ManagedSession, _GRADE_TPS),
}


def twin_for(request: BacktestRequest) -> tuple[Twin | None, str]:
    """(twin, "") when the screening engine can answer ``request``, else (None, the reason)."""
    cls = resolve_strategy(request.strategy)
    twin = TWINS.get(cls)
    if twin is None:
        return None, f"{cls.__name__} has no screening twin"
    if len(request.pairs) != 1:
        return None, "the screening engine runs one pair at a time (account-level caps across pairs need Backtrader)"
    if getattr(request, "market_gate", None) is not None:
        return None, "market-side entry rules (liquidity tiers, maintenance windows) need Backtrader"
    params = cls.param_values(request.strategy_params)
    if any(len(params.get(k, ())) > twin.max_tp_tiers for k in twin.tp_params):
        return None, f"more than {twin.max_tp_tiers} take-profit tiers"
    if twin.session is ManagedSession and ml_in_play(params):
        return None, "grade 3 asks the active ML model, which only the Backtrader path consults"
    return twin, ""


@dataclass
class Segment:
    ts: np.ndarray
    arrays: PairData
    candles: Candles


@dataclass
class ScreeningData:
    """Everything a run reads from disk, for one request window (pairs, timeframe, range, mark/funding choices)."""

    pair: str
    timeframe: str
    spec: InstrumentSpec
    segments: list[data_prep.Segment]
    runs: list[Segment | None]  # None where the segment is too short to warm up (decided per parameter set)
    common: np.ndarray
    gaps: list[data_prep.PairGap]
    assumptions: list[str]
    key: tuple[Any, ...] = field(default=())


def data_key(request: BacktestRequest) -> tuple[Any, ...]:
    return (tuple(normalize_pair(p) for p in request.pairs), request.timeframe, request.start_ms, request.end_ms,
            str(request.data_dir), request.use_mark, request.use_funding, id(request.candles))


def prepare(request: BacktestRequest) -> ScreeningData:
    """Load and align what ``run_backtest`` would load for ``request`` (one pair)."""
    pairs = [normalize_pair(p) for p in request.pairs]
    if len(pairs) != 1:
        raise ValueError("the screening engine runs one pair at a time")
    pair = pairs[0]
    data_dir = Path(request.data_dir) if request.data_dir else bundled_data_dir()
    tf = request.timeframe
    assumptions: list[str] = []
    if request.candles is not None:
        df = request.candles[pair]
        df = df[(df["timestamp"] >= (request.start_ms or -2**62)) & (df["timestamp"] < (request.end_ms or 2**62))]
        df = df.reset_index(drop=True)
    else:
        df = data_prep.load_pair_candles(data_dir, pair, tf, request.start_ms, request.end_ms)
    mark = data_prep.load_mark(data_dir, pair, tf, request.start_ms, request.end_ms) if request.use_mark else None
    if mark is None:
        assumptions.append(f"{pair}: no mark-price candles, mark taken equal to last price")
    if request.use_funding and not data_prep.funding_path_exists(data_dir, pair):
        assumptions.append(f"{pair}: no funding file, funding not charged")
    rules = resolve_rules(pairs, data_dir, request.start_ms, request.end_ms)
    assumptions[:0] = rules.notes
    frames = {pair: df}
    gaps = data_prep.pair_gaps(frames, tf)
    common = data_prep.align(frames)
    runs: list[Segment | None] = []
    segs: list[data_prep.Segment] = []
    ts_all = df["timestamp"].to_numpy()
    for a, b in data_prep.segments(common, tf):
        seg_ts = common[a:b]
        segs.append(data_prep.Segment(int(seg_ts[0]), int(seg_ts[-1]), b - a))
        idx = np.searchsorted(ts_all, seg_ts)
        part = df.iloc[idx].reset_index(drop=True)
        ts = part["timestamp"].to_numpy(dtype="int64")
        mdf, mtf = mark if mark is not None else (None, None)
        ratio = data_prep.mark_ratio(ts, part["open"].to_numpy(dtype="float64"), mdf, mtf)
        if request.use_funding:
            funding = data_prep.funding_arrays(data_dir, pair, int(ts[0]), int(ts[-1]), mdf)
        else:
            funding = (np.empty(0, dtype="int64"), np.empty(0), np.empty(0))
        arrays = data_prep.pair_arrays(part, ratio, funding)
        vol = part["volume"].to_numpy(dtype="float64") if "volume" in part else np.zeros(len(part))
        runs.append(Segment(ts, arrays, Candles(arrays.ts_ms, arrays.open, arrays.high, arrays.low, arrays.close,
                                                vol)))
    if not len(common):
        raise ValueError("no candles in the requested range for all pairs together")
    return ScreeningData(pair, tf, rules.specs[pair], segs, runs, common, gaps, assumptions, data_key(request))


def _params_array(request: BacktestRequest, params: Mapping[str, Any], spec: InstrumentSpec) -> np.ndarray:
    P = np.zeros(K.N_PARAMS)
    P[K.P_LEV] = request.leverage
    P[K.P_MAKER] = request.fees.maker
    P[K.P_TAKER] = request.fees.taker
    P[K.P_SLIP_BPS] = request.slippage.bps
    P[K.P_SLIP_RANGE] = request.slippage.range_share
    P[K.P_STEP] = spec.step_size
    P[K.P_TICK] = spec.tick_size
    P[K.P_TICK_DEC] = decimals(spec.tick_size)
    P[K.P_LIQ_RATE] = spec.liquidation_fee
    P[K.P_TRAIL_STEP] = params["trail_min_step"]
    P[K.P_STRAT_FEE] = params["taker_fee"]
    return P


def run_screening(request: BacktestRequest, data: ScreeningData | None = None) -> BacktestResult:
    """``run_backtest`` through the kernel. Raises ValueError when the strategy has no twin for this request."""
    t0 = time.perf_counter()
    twin, why = twin_for(request)
    if twin is None:
        raise ValueError(why)
    cls = twin.strategy
    params = cls.param_values(request.strategy_params)
    if data is None or data.key != data_key(request):
        data = prepare(request)
    spec = data.spec
    tf_ms = timeframe_ms(request.timeframe)
    warmup = cls.warmup_bars(params)
    P = _params_array(request, params, spec)
    br = bracket_array(spec.brackets)
    lev = int(request.leverage)
    wallet = float(request.initial_wallet)
    trades: list[TradeRecord] = []
    eq_ms: list[np.ndarray] = []
    eq: list[np.ndarray] = []
    segs: list[data_prep.Segment] = []
    risk_counts: dict[str, dict[str, int]] = {}
    totals = np.zeros(6)  # fees, funding paid, liquidation fees, liquidations, exposure bars, insurance
    for seg, run in zip(data.segments, data.runs, strict=True):
        if run is None or seg.bars < warmup + 2:
            segs.append(data_prep.Segment(seg.start_ms, seg.end_ms, seg.bars, skipped=True))
            continue
        segs.append(seg)
        wallet = _run_segment(twin, params, spec, lev, P, br, run, wallet, trades, eq_ms, eq, totals, data.pair,
                              tf_ms, risk_counts)
    equity_ms = np.concatenate(eq_ms) if eq_ms else np.empty(0, dtype="int64")
    equity = np.concatenate(eq) if eq else np.empty(0)
    metrics = compute_metrics(equity_ms, equity, trades, initial=float(request.initial_wallet), bar_ms=tf_ms,
                              fees=float(totals[0] + totals[2]), funding=float(totals[1]),
                              liquidations=int(totals[3]), exposure_bars=int(totals[4]))
    assumptions = list(data.assumptions)
    if data.gaps:
        assumptions.append(f"{len(data.gaps)} data gaps: the run was split into {len(segs)} segments, none bridged")
    if totals[5]:
        assumptions.append(f"insurance fund absorbed {totals[5]:.2f} USDT of negative balance")
    common = data.common
    result = BacktestResult(
        run_id=new_run_id(cls.__name__), strategy=cls.__name__, pairs=[data.pair], timeframe=request.timeframe,
        leverage=request.leverage, initial_wallet=float(request.initial_wallet), final_wallet=wallet,
        start_ms=int(common[0]), end_ms=int(common[-1]) + tf_ms, bars=len(common), trades=trades,
        equity_ms=equity_ms, equity=equity, metrics=metrics, segments=segs, gaps=list(data.gaps), rejections=[],
        assumptions=assumptions, elapsed_s=time.perf_counter() - t0,
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()})
    result.risk_counts = risk_counts
    return result


def _run_segment(twin: Twin, params: Mapping[str, Any], spec: InstrumentSpec, lev: int, P: np.ndarray,
                 br: np.ndarray, run: Segment, wallet: float, trades: list[TradeRecord], eq_ms: list[np.ndarray],
                 eq: list[np.ndarray], totals: np.ndarray, pair: str, bar_ms: int,
                 risk_counts: dict[str, dict[str, int]]) -> float:
    ind = twin.strategy.compute_indicators(run.candles, params)
    a = run.arrays
    n = len(run.ts)
    session = twin.session(twin.strategy, params, spec, lev, pair, run.ts, bar_ms, a.close, ind)
    P = P.copy()
    P[K.P_MODE] = session.mode
    P[K.P_TIME_STOP] = getattr(session, "time_stop_bars", 0.0)
    P[K.P_BREAKEVEN] = 1.0 if getattr(session, "breakeven", True) else 0.0
    bars = np.empty((K.N_BAR_ROWS, n))
    bars[K.BO], bars[K.BH], bars[K.BL], bars[K.BC] = a.open, a.high, a.low, a.close
    bars[K.BRATIO] = a.mark_ratio
    bars[K.BSIG], bars[K.BATR], bars[K.BEXL], bars[K.BEXS] = session.rows
    st = np.zeros(K.N_STATE)
    st[K.S_WALLET] = wallet
    st[K.S_LP_DIRTY] = 1.0
    st[K.S_FPTR] = float(np.searchsorted(a.funding_ms, a.ts_ms[0])) if n else 0.0
    orders = np.zeros((K.MAX_ORDERS, K.N_ORDER_COLS))
    kids = np.zeros((K.MAX_ORDERS, K.N_ORDER_COLS))
    trades_arr = np.zeros((max(64, n // 50), K.N_TRADE_COLS))
    equity = np.zeros(n)
    fmark = a.funding_mark if len(a.funding_mark) else np.full(len(a.funding_ms), np.nan)
    fms = np.ascontiguousarray(a.funding_ms, dtype="int64")
    frate = np.ascontiguousarray(a.funding_rate, dtype="float64")
    start = 0
    while True:
        code, i = K.run(bars, run.ts, fms, frate, fmark, P, br, st, orders, kids, trades_arr, equity, start)
        if code == K.DONE:
            break
        if code == K.NEED_SPACE:
            trades_arr = np.concatenate([trades_arr, np.zeros_like(trades_arr)])
            start = i
            continue
        ntr = int(st[K.S_NTRADES])
        if session.pending:
            row = trades_arr[ntr - 1] if ntr > session.trades_at_entry else None
            session.settle([] if row is None else [(float(row[K.T_STRAT_PNL]), float(row[K.T_WALLET]))])
        side = 1 if bars[K.BSIG, i] > 0 else -1
        w = float(st[K.S_WALLET])
        order = session.decide(i, side, w, max(0.0, w), float(a.close[i] * a.mark_ratio[i]))
        if order is not None:
            session.trades_at_entry = ntr
            K.place_entry(st, orders, kids, float(order.side), order.qty, order.stop, order.tp_prices,
                          order.tp_qtys, order.trail_mult, order.trail_on_fill, order.hold_ms, float(run.ts[i]))
        start = i + 1
    for row in trades_arr[: int(st[K.S_NTRADES])]:
        trades.append(_record(row, run.ts, pair))
    eq_ms.append(run.ts.copy())
    eq.append(equity)
    totals += (st[K.S_FEES], st[K.S_FUNDING_PAID], st[K.S_LIQ_FEES], st[K.S_LIQS], st[K.S_EXPOSURE],
               st[K.S_INSURANCE])
    for rule, per in session.book.counts.items():
        mine = risk_counts.setdefault(rule, {})
        for effect, count in per.items():
            mine[effect] = mine.get(effect, 0) + count
    return float(st[K.S_WALLET])


def _record(row: np.ndarray, ts: np.ndarray, pair: str) -> TradeRecord:
    reason = int(row[K.T_REASON])
    return TradeRecord(
        pair=pair, side="long" if row[K.T_SIDE] > 0 else "short", open_ms=int(ts[int(row[K.T_OPEN_I])]),
        close_ms=int(ts[int(row[K.T_CLOSE_I])]), qty=float(row[K.T_QTY]), entry_price=float(row[K.T_ENTRY]),
        exit_price=float(row[K.T_EXIT]), realized_pnl=float(row[K.T_RPNL]), fees=float(row[K.T_FEES]),
        funding=float(row[K.T_FUND]), liquidation_fee=float(row[K.T_LIQFEE]),
        exit_reason=K.TAG_NAMES[reason] if 0 <= reason < len(K.TAG_NAMES) else "",
        fills=int(row[K.T_FILLS]), liquidated=bool(row[K.T_LIQ]), equity_at_open=float(row[K.T_EQ]))


def engine_frame(result: BacktestResult) -> pd.DataFrame:
    """The trade list as the parity tests compare it (one row per trade)."""
    return pd.DataFrame([{"open_ms": t.open_ms, "close_ms": t.close_ms, "side": t.side, "qty": t.qty,
                          "entry": t.entry_price, "exit": t.exit_price, "reason": t.exit_reason}
                         for t in result.trades])
