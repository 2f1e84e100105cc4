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

from trader.backtest import data_prep
from trader.backtest.broker import PairData, TradeRecord
from trader.backtest.runner import BacktestRequest, BacktestResult, new_run_id, resolve_strategy
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir
from trader.data.timeframes import timeframe_ms
from trader.model.instruments import InstrumentSpec
from trader.model.rules import resolve_rules
from trader.performance.metrics import compute_metrics
from trader.risk.book import HOUR_MS, RiskBook
from trader.risk.limits import limits_from_params
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
    if getattr(request, "market_gate", None) is not None or getattr(request, "liquidity", None) is not None:
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
    arrays: list[PairData]  # per pair, in request order
    candles: list[Candles]


@dataclass
class ScreeningData:
    """Everything a run reads from disk, for one request window (pairs, timeframe, range, mark/funding choices)."""

    pairs: list[str]
    timeframe: str
    specs: list[InstrumentSpec]
    segments: list[data_prep.Segment]
    runs: list[Segment]
    common: np.ndarray
    gaps: list[data_prep.PairGap]
    assumptions: list[str]
    key: tuple[Any, ...] = field(default=())


def data_key(request: BacktestRequest) -> tuple[Any, ...]:
    return (tuple(normalize_pair(p) for p in request.pairs), request.timeframe, request.start_ms, request.end_ms,
            str(request.data_dir), request.use_mark, request.use_funding, id(request.candles))


def prepare(request: BacktestRequest) -> ScreeningData:
    """Load and align what ``run_backtest`` would load for ``request``: the same files and data_prep functions,
    the bars every pair has, one segment per contiguous stretch."""
    pairs = [normalize_pair(p) for p in request.pairs]
    if not pairs:
        raise ValueError("no pairs to backtest")
    data_dir = Path(request.data_dir) if request.data_dir else bundled_data_dir()
    tf = request.timeframe
    frames, marks, assumptions = data_prep.load_inputs(request, pairs, data_dir)
    rules = resolve_rules(pairs, data_dir, request.start_ms, request.end_ms)
    assumptions[:0] = rules.notes
    gaps = data_prep.pair_gaps(frames, tf)
    common = data_prep.align(frames)
    if not len(common):
        raise ValueError("no candles in the requested range for all pairs together")
    runs: list[Segment] = []
    segs: list[data_prep.Segment] = []
    for a, b in data_prep.segments(common, tf):
        seg_ts = common[a:b]
        segs.append(data_prep.Segment(int(seg_ts[0]), int(seg_ts[-1]), b - a))
        arrays, candles = [], []
        for pair in pairs:
            df = frames[pair]
            idx = np.searchsorted(df["timestamp"].to_numpy(), seg_ts)
            part = df.iloc[idx].reset_index(drop=True)
            ts = part["timestamp"].to_numpy(dtype="int64")
            mdf, mtf = marks[pair] if marks[pair] is not None else (None, None)
            ratio = data_prep.mark_ratio(ts, part["open"].to_numpy(dtype="float64"), mdf, mtf)
            if request.use_funding:
                funding = data_prep.funding_arrays(data_dir, pair, int(ts[0]), int(ts[-1]), mdf)
            else:
                funding = (np.empty(0, dtype="int64"), np.empty(0), np.empty(0))
            arr = data_prep.pair_arrays(part, ratio, funding)
            vol = part["volume"].to_numpy(dtype="float64") if "volume" in part else np.zeros(len(part))
            arrays.append(arr)
            candles.append(Candles(arr.ts_ms, arr.open, arr.high, arr.low, arr.close, vol))
        runs.append(Segment(np.ascontiguousarray(seg_ts, dtype="int64"), arrays, candles))
    return ScreeningData(pairs, tf, [rules.specs[p] for p in pairs], segs, runs, common, gaps, assumptions,
                         data_key(request))


def _params_array(request: BacktestRequest, params: Mapping[str, Any]) -> np.ndarray:
    P = np.zeros(K.N_PARAMS)
    P[K.P_LEV] = request.leverage
    P[K.P_MAKER] = request.fees.maker
    P[K.P_TAKER] = request.fees.taker
    P[K.P_SLIP_BPS] = request.slippage.bps
    P[K.P_SLIP_RANGE] = request.slippage.range_share
    P[K.P_TRAIL_STEP] = params["trail_min_step"]
    P[K.P_STRAT_FEE] = params["taker_fee"]
    return P


def _spec_arrays(specs: list[InstrumentSpec]) -> tuple[np.ndarray, np.ndarray]:
    pp = np.zeros((len(specs), K.N_PP))
    nb = max(len(s.brackets) for s in specs)
    br = np.zeros((len(specs), nb, 5))
    for q, spec in enumerate(specs):
        rows = bracket_array(spec.brackets)
        br[q, : len(rows)] = rows
        pp[q] = (spec.step_size, spec.tick_size, decimals(spec.tick_size), spec.liquidation_fee, len(rows))
    return pp, br


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
    tf_ms = timeframe_ms(request.timeframe)
    warmup = cls.warmup_bars(params)
    P = _params_array(request, params)
    pp, br = _spec_arrays(data.specs)
    wallet = float(request.initial_wallet)
    trades: list[TradeRecord] = []
    eq_ms: list[np.ndarray] = []
    eq: list[np.ndarray] = []
    segs: list[data_prep.Segment] = []
    risk_counts: dict[str, dict[str, int]] = {}
    totals = np.zeros(6)  # fees, funding paid, liquidation fees, liquidations, exposure bars, insurance
    for seg, run in zip(data.segments, data.runs, strict=True):
        if seg.bars < warmup + 2:
            segs.append(data_prep.Segment(seg.start_ms, seg.end_ms, seg.bars, skipped=True))
            continue
        segs.append(seg)
        wallet = _run_segment(twin, params, data, int(request.leverage), P, pp, br, run, wallet, trades, eq_ms, eq,
                              totals, tf_ms, risk_counts)
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
        run_id=new_run_id(cls.__name__), strategy=cls.__name__, pairs=list(data.pairs), timeframe=request.timeframe,
        leverage=request.leverage, initial_wallet=float(request.initial_wallet), final_wallet=wallet,
        start_ms=int(common[0]), end_ms=int(common[-1]) + tf_ms, bars=len(common), trades=trades,
        equity_ms=equity_ms, equity=equity, metrics=metrics, segments=segs, gaps=list(data.gaps), rejections=[],
        assumptions=assumptions, elapsed_s=time.perf_counter() - t0,
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()})
    result.risk_counts = risk_counts
    return result


class _Clock:
    """What the strategy's next() tells the risk book about each bar, replayed lazily: the clock, and each pair's
    close at every full hour (the correlation rule's input), pair by pair up to where Backtrader's loop would be."""

    def __init__(self, book: RiskBook, pairs: list[str], ts: np.ndarray, bar_ms: int, closes: list[np.ndarray]):
        self.book, self.pairs, self.ts, self.bar_ms, self.closes = book, pairs, ts, bar_ms, closes
        # The hourly closes feed only the correlation rule, which compares a pair with *other* open pairs: with one
        # pair they can change no decision, and replaying them was 40 % of an hourly trial.
        hours = (np.nonzero((ts + bar_ms) % HOUR_MS == 0)[0] if len(pairs) > 1 else np.empty(0, dtype="int64"))
        # As plain lists, looked up by position: upto() runs at every entry decision, for every pair.
        self.hour_ms = (ts[hours] + bar_ms).tolist()
        self.hour_close = [c[hours].tolist() for c in closes]
        self.through = (np.searchsorted(hours, np.arange(len(ts)), side="right").tolist() if len(hours)
                        else None)  # bar i → how many full-hour bars are at or before it
        self.told = [0] * len(pairs)  # hourly closes already told, per pair
        if len(ts):
            book.observe(pairs[0], int(ts[0]) + bar_ms, float(closes[0][0]))  # the first next() call

    def upto(self, i: int, k: int) -> None:
        """Pairs up to ``k`` have seen bar ``i``, the rest bar ``i − 1``; the clock is at bar i's close."""
        through = self.through
        if through is not None:
            now, before = through[i], (through[i - 1] if i else 0)
            observe, hour_ms = self.book.observe, self.hour_ms
            for q, pair in enumerate(self.pairs):
                target = now if q <= k else before
                told = self.told[q]
                if target > told:
                    closes = self.hour_close[q]
                    for j in range(told, target):
                        observe(pair, hour_ms[j], closes[j])
                    self.told[q] = target
        self.book.observe(self.pairs[k], int(self.ts[i]) + self.bar_ms, float(self.closes[k][i]))


def _run_segment(twin: Twin, params: Mapping[str, Any], data: ScreeningData, lev: int, P: np.ndarray,
                 pp: np.ndarray, br: np.ndarray, run: Segment, wallet: float, trades: list[TradeRecord],
                 eq_ms: list[np.ndarray], eq: list[np.ndarray], totals: np.ndarray, bar_ms: int,
                 risk_counts: dict[str, dict[str, int]]) -> float:
    npairs = len(data.pairs)
    n = len(run.ts)
    book = RiskBook(limits_from_params(params))
    bars = np.empty((npairs, K.N_BAR_ROWS, n))
    sessions = []
    fms_l, frate_l, fmark_l = [], [], []
    pst = np.zeros((npairs, K.N_STATE))
    off = 0
    for q, (pair, a, candles) in enumerate(zip(data.pairs, run.arrays, run.candles, strict=True)):
        ind = twin.strategy.compute_indicators(candles, params)
        session = twin.session(twin.strategy, params, data.specs[q], lev, pair, run.ts, bar_ms, a.close, ind, book)
        sessions.append(session)
        bars[q, K.BO], bars[q, K.BH], bars[q, K.BL], bars[q, K.BC] = a.open, a.high, a.low, a.close
        bars[q, K.BRATIO] = a.mark_ratio
        bars[q, K.BSIG], bars[q, K.BATR], bars[q, K.BEXL], bars[q, K.BEXS] = session.rows
        nf = len(a.funding_ms)
        fms_l.append(np.asarray(a.funding_ms, dtype="int64"))
        frate_l.append(np.asarray(a.funding_rate, dtype="float64"))
        fmark_l.append(np.asarray(a.funding_mark, dtype="float64") if len(a.funding_mark) == nf
                       else np.full(nf, np.nan))
        pst[q, K.S_FPTR] = off + (int(np.searchsorted(a.funding_ms, a.ts_ms[0])) if n else 0)
        pst[q, K.S_FEND] = off + nf
        off += nf
    pst[:, K.S_LP_DIRTY] = 1.0
    pst[:, K.S_LAST_I] = -1.0
    pst[:, K.S_DEAD_BAR] = -1.0
    s0 = sessions[0]
    P = P.copy()
    P[K.P_MODE] = s0.mode
    P[K.P_TIME_STOP] = getattr(s0, "time_stop_bars", 0.0)
    P[K.P_BREAKEVEN] = 1.0 if getattr(s0, "breakeven", True) else 0.0
    fms = np.concatenate(fms_l) if off else np.empty(0, dtype="int64")
    frate = np.concatenate(frate_l) if off else np.empty(0)
    fmark = np.concatenate(fmark_l) if off else np.empty(0)
    acc = np.zeros(K.N_ACC)
    acc[K.A_WALLET] = wallet
    orders = np.zeros((npairs, K.MAX_ORDERS, K.N_ORDER_COLS))
    kids = np.zeros((npairs, K.MAX_ORDERS, K.N_ORDER_COLS))
    trades_arr = np.zeros((max(64, npairs * n // 50), K.N_TRADE_COLS))
    equity = np.zeros(n)
    clock = _Clock(book, data.pairs, run.ts, bar_ms, [a.close for a in run.arrays])
    start, start_pair = 0, 0
    while True:
        code, i, k = K.run(bars, run.ts, fms, frate, fmark, P, pp, br, acc, pst, orders, kids, trades_arr, equity,
                           start, start_pair)
        if code == K.DONE:
            break
        if code == K.NEED_SPACE:
            trades_arr = np.concatenate([trades_arr, np.zeros_like(trades_arr)])
            start, start_pair = i, 0
            continue
        _settle(sessions, pst, trades_arr, int(acc[K.A_NTRADES]), i)
        clock.upto(i, k)
        book.see_wallet(float(acc[K.A_PEAK]))  # next() shows the book the wallet every bar: its peak so far
        session = sessions[k]
        side = 1 if bars[k, K.BSIG, i] > 0 else -1
        avail = float(K.available(acc, pst, bars, float(lev), i))
        free = avail - _pending_margin(orders, pst, bars, lev, i)
        order = session.decide(i, side, float(acc[K.A_WALLET]), avail, free,
                               float(bars[k, K.BC, i] * bars[k, K.BRATIO, i]))
        if session.refused_at == i:  # its rejection is notified at the next bar, in sending order
            session.refused_seq = float(acc[K.A_SEQ])
            acc[K.A_SEQ] += 1.0
        if session.pending:  # sized and booked: its end (trade, or never filled) is told before its next entry
            session.trades_at_entry = int(acc[K.A_NTRADES])
        if order is not None:
            K.place_entry(pst[k], orders[k], kids[k], float(order.side), order.qty, order.stop, order.tp_prices,
                          order.tp_qtys, order.trail_mult, order.trail_on_fill, order.hold_ms, float(run.ts[i]))
        start, start_pair = i, k + 1
    for row in trades_arr[: int(acc[K.A_NTRADES])]:
        trades.append(_record(row, run.ts, data.pairs[int(row[K.T_PAIR])]))
    eq_ms.append(run.ts.copy())
    eq.append(equity)
    totals += (acc[K.A_FEES], acc[K.A_FUNDING_PAID], acc[K.A_LIQ_FEES], acc[K.A_LIQS], acc[K.A_EXPOSURE],
               acc[K.A_INSURANCE])
    for rule, per in book.counts.items():
        mine = risk_counts.setdefault(rule, {})
        for effect, count in per.items():
            mine[effect] = mine.get(effect, 0) + count
    return float(acc[K.A_WALLET])


def _pending_margin(orders: np.ndarray, pst: np.ndarray, bars: np.ndarray, lev: int, i: int) -> float:
    """FuturesBroker._free_for_orders' reservation: other pairs' entries sent this bar and not filled yet."""
    held = 0.0
    for q in range(pst.shape[0]):
        for j in range(int(pst[q, K.S_NORD])):
            if orders[q, j, K.O_TAG] == K.TAG_ENTRY:
                held += orders[q, j, K.O_QTY] * bars[q, K.BC, i] / lev
    return held


def _settle(sessions: list[Any], pst: np.ndarray, trades_arr: np.ndarray, ntrades: int, i: int) -> None:
    """Tell the book how every booked entry ended by bar ``i``'s notifications, in the order they were notified
    (bar, then pair): a closed trade with the P&L the strategy saw, or an entry that never filled."""
    events = []
    for q, s in enumerate(sessions):
        if not s.pending:
            continue
        rows = trades_arr[s.trades_at_entry:ntrades]
        mine = rows[rows[:, K.T_PAIR] == q] if len(rows) else rows
        # Sort key: bar, then what the strategy sent on the bar before (stop replacements, refused entries) in the
        # order it sent them, then the broker's fills pair by pair.
        if len(mine):
            row = mine[0]
            seq = float(row[K.T_SEQ])
            events.append(((int(row[K.T_CLOSE_I]), 0 if seq >= 0 else 1, seq if seq >= 0 else q), q,
                           [(float(row[K.T_STRAT_PNL]), float(row[K.T_WALLET]))]))
        elif pst[q, K.S_DEAD_BAR] >= 0 and pst[q, K.S_DEAD_BAR] <= i:
            events.append(((int(pst[q, K.S_DEAD_BAR]), 1, q), q, []))
        elif 0 <= s.refused_at < i:
            events.append(((s.refused_at + 1, 0, s.refused_seq), q, []))
    for _key, q, closed in sorted(events, key=lambda e: e[0]):
        sessions[q].settle(closed)
        sessions[q].refused_at = -1


def _record(row: np.ndarray, ts: np.ndarray, pair: str) -> TradeRecord:
    reason = int(row[K.T_REASON])
    return TradeRecord(
        pair=pair, side="long" if row[K.T_SIDE] > 0 else "short", open_ms=int(ts[int(row[K.T_OPEN_I])]),
        close_ms=int(ts[int(row[K.T_CLOSE_I])]), qty=float(row[K.T_QTY]), entry_price=float(row[K.T_ENTRY]),
        exit_price=float(row[K.T_EXIT]), realized_pnl=float(row[K.T_RPNL]), fees=float(row[K.T_FEES]),
        funding=float(row[K.T_FUND]), liquidation_fee=float(row[K.T_LIQFEE]),
        exit_reason=K.TAG_NAMES[reason] if 0 <= reason < len(K.TAG_NAMES) else "",
        fills=int(row[K.T_FILLS]), liquidated=bool(row[K.T_LIQ]), equity_at_open=float(row[K.T_EQ]))

