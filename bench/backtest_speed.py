"""Backtest speed: bars per second end to end on 1,000,000 real one-minute bars.

The bars are real 1m futures candles from ../shared/data (BTC, ETH, SOL, BNB, XRP, DOGE), cut into their contiguous
stretches and laid end to end; each stretch is scaled so it opens where the previous one closed (returns stay real,
no price is invented) and the timestamps are renumbered to one unbroken minute series. Both timings include reading
the Parquet files. Beside the engine, the same signals are computed with a plain numpy pass in the same run.

    .venv/bin/python bench/backtest_speed.py [--bars 1000000] [--data ../shared/data/futures]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.data.store import load_candles, split_on_gaps
from trader.strategy.base import Candles
from trader.strategy.reference import RsiBollingerStrategy

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT", "DOGE/USDT:USDT"]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "futures"
T0 = 1_577_836_800_000  # 2020-01-01T00:00Z, only a label for the renumbered minutes


def stitched_bars(data_dir: Path, n: int) -> pd.DataFrame:
    stretches = []
    for pair in PAIRS:
        df = load_candles(data_dir, pair, "1m")
        stretches += [s for s in split_on_gaps(df, "1m") if len(s) >= 1_000]
    parts, total, k, level = [], 0, 0, None
    while total < n:
        s = stretches[k % len(stretches)]
        k += 1
        px = s[["open", "high", "low", "close"]].to_numpy(dtype="float64")
        scale = 1.0 if level is None else level / px[0, 0]
        px = px * scale
        level = px[-1, 3]
        take = min(len(px), n - total)
        parts.append((px[:take], s["volume"].to_numpy(dtype="float64")[:take]))
        total += take
    px = np.concatenate([p for p, _ in parts])
    vol = np.concatenate([v for _, v in parts])
    return pd.DataFrame({"timestamp": T0 + 60_000 * np.arange(n, dtype="int64"), "open": px[:, 0],
                         "high": px[:, 1], "low": px[:, 2], "close": px[:, 3], "volume": vol})


def numpy_pass(df: pd.DataFrame) -> tuple[int, float]:
    """The reference strategy's signals with numpy alone, plus the mean 60-bar forward return after a signal."""
    params = RsiBollingerStrategy.param_values()
    c = Candles(*(df[k].to_numpy(dtype="float64") for k in ("timestamp", "open", "high", "low", "close", "volume")))
    sig = RsiBollingerStrategy.compute_indicators(c, params)["signal"]
    fwd = np.zeros(len(c.close))
    fwd[:-60] = c.close[60:] / c.close[:-60] - 1.0
    hits = sig != 0
    return int(hits.sum()), float(np.mean(sig[hits] * fwd[hits])) if hits.any() else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    # Small risk keeps the account alive for the whole series, so the engine keeps trading (a drained account
    # stops trading and makes the bench look faster than it is).
    ap.add_argument("--risk", type=float, default=0.002)
    args = ap.parse_args()

    t0 = time.perf_counter()
    df = stitched_bars(args.data, args.bars)
    t_load = time.perf_counter() - t0
    res = run_backtest(BacktestRequest(pairs=("BTC/USDT:USDT",), candles={"BTC/USDT:USDT": df},
                                       use_mark=False, use_funding=False,
                                       strategy_params={"risk_per_trade": args.risk}))
    t_engine = time.perf_counter() - t0

    t1 = time.perf_counter()
    df2 = stitched_bars(args.data, args.bars)
    t2 = time.perf_counter()
    signals, edge = numpy_pass(df2)
    t_numpy = time.perf_counter() - t1
    t_numpy_compute = time.perf_counter() - t2

    engine_bps = args.bars / t_engine
    numpy_bps = args.bars / t_numpy
    print(f"bars: {args.bars:,} (stitched real 1m candles, loading {t_load:.2f} s)")
    print(f"backtrader engine, end to end: {t_engine:.2f} s = {engine_bps:,.0f} bars/s "
          f"({len(res.trades):,} trades, {res.metrics.liquidations} liquidations, "
          f"final wallet {res.final_wallet:,.2f})")
    print(f"numpy pass of the same signals: {t_numpy:.2f} s = {numpy_bps:,.0f} bars/s "
          f"({signals:,} signal bars, mean 60-bar signed return {edge:+.5f})")
    print(f"  (numpy compute alone, without loading: {args.bars / t_numpy_compute:,.0f} bars/s)")
    print(f"ratio numpy/engine: {numpy_bps / engine_bps:,.1f}x")
    print(f"target >= 12,000 bars/s: {'met' if engine_bps >= 12_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
