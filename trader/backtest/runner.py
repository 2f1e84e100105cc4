"""The backtest entry point for every caller (CLI, bot, optimiser): ``run_backtest(request, progress)``.

    result = run_backtest(BacktestRequest(strategy="rsi_bollinger", pairs=("BTC", "ETH"), timeframe="5m",
                                          start_ms=s, end_ms=e, leverage=25), progress=lambda f, msg: ...)
    result.metrics.sharpe, result.trades, result.equity_series()

Each contiguous stretch of data (all pairs present) is one Cerebro run with a fresh FuturesBroker that starts from
the previous stretch's wallet; open positions are closed at the last bar before a hole ("end_of_run"), so no
position or indicator ever spans missing candles.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from trader.backtest import data_prep
from trader.backtest.broker import FuturesBroker, PairData, TradeRecord
from trader.backtest.feeds import make_feed
from trader.backtest.slippage import SlippageModel
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir
from trader.data.timeframes import timeframe_ms
from trader.data.timerange import parse_timerange as _parse_timerange
from trader.model.instruments import FeeSchedule
from trader.model.rules import resolve_rules
from trader.performance.metrics import Metrics, compute_metrics
from trader.strategy.base import Candles, FuturesStrategy
from trader.strategy.reference import STRATEGIES

Progress = Callable[[float, str], None]


def parse_timerange(text: str) -> tuple[int | None, int | None]:
    """``20250504-20250603`` → [start, end) in UTC ms; either side may be empty. The end day is exclusive.
    (trader.data.timerange's parser, as the tuple the runner's callers use.)"""
    span = _parse_timerange(text)
    return span.start_ms, span.end_ms


@dataclass(frozen=True)
class BacktestRequest:
    strategy: str | type[FuturesStrategy] = "rsi_bollinger"
    pairs: tuple[str, ...] = ("BTC/USDT:USDT",)
    timeframe: str = "1m"
    start_ms: int | None = None
    end_ms: int | None = None
    leverage: int = 25
    initial_wallet: float = 10_000.0
    data_dir: Path | None = None  # None: the sample data shipped with the package
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    slippage: SlippageModel = field(default_factory=SlippageModel)
    use_mark: bool = True
    use_funding: bool = True
    # Candles supplied directly (stress scenarios, tests): pair -> frame with timestamp/open/high/low/close/volume.
    candles: Mapping[str, pd.DataFrame] | None = None
    # The market-side entry rules (trader.risk.gate.MarketGate: liquidity tiers from candle volume, maintenance
    # windows); set on each segment's broker, where the strategies' RiskBook asks it. None: no such rule.
    market_gate: Any = None
    # Liquidity tiers from candle volume (trader.risk.liquidity.LiquidityRules: the config's risk.liquidity), the
    # backtest's stand-in for the live order book; None: not applied. Said in the result's assumptions.
    liquidity: Any = None


@dataclass
class BacktestResult:
    run_id: str
    strategy: str
    pairs: list[str]
    timeframe: str
    leverage: int
    initial_wallet: float
    final_wallet: float
    start_ms: int
    end_ms: int
    bars: int
    trades: list[TradeRecord]
    equity_ms: np.ndarray
    equity: np.ndarray
    metrics: Metrics
    segments: list[data_prep.Segment]
    gaps: list[data_prep.PairGap]
    rejections: list[str]
    assumptions: list[str]
    elapsed_s: float
    params: dict[str, Any]
    # How often each risk rule acted (trader/risk): rule -> {"blocked"|"shrunk"|"lowered": count}.
    risk_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def equity_series(self) -> pd.Series:
        return pd.Series(self.equity, index=pd.to_datetime(self.equity_ms, unit="ms", utc=True), name="equity")


def resolve_strategy(strategy: str | type[FuturesStrategy]) -> type[FuturesStrategy]:
    if isinstance(strategy, type):
        return strategy
    try:
        return STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def run_backtest(request: BacktestRequest, progress: Progress | None = None) -> BacktestResult:
    t0 = time.perf_counter()
    cls = resolve_strategy(request.strategy)
    params = cls.param_values(request.strategy_params)
    pairs = [normalize_pair(p) for p in request.pairs]
    if not pairs:
        raise ValueError("no pairs to backtest")
    data_dir = Path(request.data_dir) if request.data_dir else bundled_data_dir()
    tf = request.timeframe
    tf_ms = timeframe_ms(tf)
    report = progress or (lambda _f, _m: None)

    report(0.0, "loading data")
    frames, marks, assumptions = data_prep.load_inputs(request, pairs, data_dir)

    gate = request.market_gate
    if request.liquidity is not None:
        from trader.risk.gate import CombinedGate
        from trader.risk.liquidity import CANDLE_ASSUMPTION, CandleLiquidityGate

        candle_gate = CandleLiquidityGate(frames, request.liquidity, tf_ms)
        gate = candle_gate if gate is None else CombinedGate([gate, candle_gate])
        assumptions.append(CANDLE_ASSUMPTION)
    # The exchange's rules nearest the range (a pair without any is refused here, naming what is missing).
    rules = resolve_rules(pairs, data_dir, request.start_ms, request.end_ms)
    assumptions[:0] = rules.notes
    gaps = data_prep.pair_gaps(frames, tf)
    common = data_prep.align(frames)
    ranges = data_prep.segments(common, tf)
    warmup = cls.warmup_bars(params)
    total_bars = len(common)
    if not total_bars:
        raise ValueError("no candles in the requested range for all pairs together")

    wallet = float(request.initial_wallet)
    trades: list[TradeRecord] = []
    eq_ms: list[np.ndarray] = []
    eq: list[np.ndarray] = []
    segs: list[data_prep.Segment] = []
    rejections: list[str] = []
    counters = {"fees": 0.0, "funding": 0.0, "liq_fees": 0.0, "liquidations": 0, "exposure_bars": 0,
                "insurance": 0.0}
    risk_counts: dict[str, dict[str, int]] = {}
    done = 0
    for a, b in ranges:
        seg_ts = common[a:b]
        if b - a < warmup + 2:
            segs.append(data_prep.Segment(int(seg_ts[0]), int(seg_ts[-1]), b - a, skipped=True))
            done += b - a
            continue
        segs.append(data_prep.Segment(int(seg_ts[0]), int(seg_ts[-1]), b - a))
        broker = FuturesBroker(cash=wallet, leverage=request.leverage, fees=request.fees, slippage=request.slippage,
                               progress=(lambda n, _d=done: report((_d + n) / total_bars, "running")))
        if gate is not None:
            broker.market_gate = gate
        cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, quicknotify=False)
        cerebro.setbroker(broker)
        for pair in pairs:
            df = frames[pair]
            idx = np.searchsorted(df["timestamp"].to_numpy(), seg_ts)
            part = df.iloc[idx].reset_index(drop=True)
            arrays = _pair_data(data_dir, pair, part, marks[pair], request, tf_ms)
            candles = Candles(arrays.ts_ms, arrays.open, arrays.high, arrays.low, arrays.close,
                              part["volume"].to_numpy(dtype="float64") if "volume" in part else np.zeros(len(part)))
            ind = cls.compute_indicators(candles, params)
            feed = make_feed(pair, arrays.ts_ms, {k: getattr(candles, k) for k in
                                                  ("open", "high", "low", "close", "volume")}, ind, tf_ms // 60_000)
            cerebro.adddata(feed, name=pair)
            broker.attach(pair, arrays, rules.specs[pair])
        cerebro.addstrategy(cls, **dict(request.strategy_params))
        strategy = cerebro.run()[0]
        for rule, per in getattr(getattr(strategy, "risk", None), "counts", {}).items():
            mine = risk_counts.setdefault(rule, {})
            for effect, n in per.items():
                mine[effect] = mine.get(effect, 0) + n
        wallet = broker.wallet
        trades += broker.trades
        eq_ms.append(np.frombuffer(broker.equity_ms, dtype="int64").copy())
        eq.append(np.frombuffer(broker.equity, dtype="float64").copy())
        rejections += broker.rejections
        counters["fees"] += broker.fees_paid
        counters["funding"] += broker.funding_paid
        counters["liq_fees"] += broker.liquidation_fees
        counters["liquidations"] += broker.liquidations
        counters["exposure_bars"] += broker.exposure_bars
        counters["insurance"] += broker.insurance_covered
        done += b - a
        report(done / total_bars, "running")

    equity_ms = np.concatenate(eq_ms) if eq_ms else np.empty(0, dtype="int64")
    equity = np.concatenate(eq) if eq else np.empty(0)
    metrics = compute_metrics(
        equity_ms, equity, trades, initial=float(request.initial_wallet), bar_ms=tf_ms,
        fees=counters["fees"] + counters["liq_fees"], funding=counters["funding"],
        liquidations=int(counters["liquidations"]), exposure_bars=int(counters["exposure_bars"]),
    )
    if gaps:
        assumptions.append(f"{len(gaps)} data gaps: the run was split into {len(segs)} segments, none bridged")
    if counters["insurance"]:
        assumptions.append(f"insurance fund absorbed {counters['insurance']:.2f} USDT of negative balance")
    report(1.0, "done")
    return BacktestResult(
        run_id=new_run_id(cls.__name__),
        strategy=cls.__name__,
        pairs=pairs,
        timeframe=tf,
        leverage=request.leverage,
        initial_wallet=float(request.initial_wallet),
        final_wallet=wallet,
        start_ms=int(common[0]),
        end_ms=int(common[-1]) + tf_ms,
        bars=total_bars,
        trades=trades,
        equity_ms=equity_ms,
        equity=equity,
        metrics=metrics,
        segments=segs,
        gaps=gaps,
        rejections=rejections,
        assumptions=assumptions,
        elapsed_s=time.perf_counter() - t0,
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
        risk_counts=risk_counts,
    )


def _pair_data(data_dir: Path, pair: str, part: pd.DataFrame, mark: tuple[pd.DataFrame, str] | None,
               request: BacktestRequest, tf_ms: int) -> PairData:
    ts = part["timestamp"].to_numpy(dtype="int64")
    mdf, mtf = mark if mark is not None else (None, None)
    ratio = data_prep.mark_ratio(ts, part["open"].to_numpy(dtype="float64"), mdf, mtf)
    if request.use_funding:
        funding = data_prep.funding_arrays(data_dir, pair, int(ts[0]), int(ts[-1]), mdf)
    else:
        funding = (np.empty(0, dtype="int64"), np.empty(0), np.empty(0))
    return data_prep.pair_arrays(part, ratio, funding)


def new_run_id(strategy: str = "") -> str:
    """Sortable and unique, and short enough for ``BacktestRun.id`` (36 characters)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:12]}"
