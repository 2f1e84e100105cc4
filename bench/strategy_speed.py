"""Master strategy speed: (1) the backtest over 1,000,000 real 1m bars end to end (its 5m/15m/30m/1h/4h timeframes
are built inside compute_indicators), target ≥ 20,000 bars/s; (2) the live per-candle cost with 10 pairs: the live
feed's own code path (``trader.live.feed.LiveFeed.push_minute``: aggregation + ``compute_indicators`` on the rolling
window the master needs) for all 10 pairs per closed 5m candle, p50/p99, target p99 ≤ 2 ms.

    .venv/bin/python bench/strategy_speed.py [--bars 1000000] [--candles 300]

(2) is not the full engine's candle→order path (bench/live_latency.py measures that for a trivial strategy):
running the master there needs no engine change, but the engine's default window (1500 bars) and history (300)
are too short for its warm-up, so this measures the feed step the master adds, which is what scales with pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtest_speed import DEFAULT_DATA, stitched_bars  # noqa: E402

from trader.backtest.runner import BacktestRequest, run_backtest  # noqa: E402
from trader.live.feed import Bar, live_feed_class  # noqa: E402
from trader.strategy.master import MasterStrategy  # noqa: E402
from trader.strategy.preflight import live_requirements  # noqa: E402

MINUTE = 60_000


def backtest(n: int, data: Path) -> None:
    t0 = time.perf_counter()
    df = stitched_bars(data, n)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    from trader.strategy.base import Candles

    c = Candles(*(df[k].to_numpy(dtype="int64" if k == "timestamp" else "float64")
                  for k in ("timestamp", "open", "high", "low", "close", "volume")))
    MasterStrategy.compute_indicators(c, MasterStrategy.param_values())
    t_ind = time.perf_counter() - t1
    res = run_backtest(BacktestRequest(strategy="master", pairs=("BTC/USDT:USDT",), timeframe="1m",
                                       candles={"BTC/USDT:USDT": df}, use_mark=False, use_funding=False))
    t_all = time.perf_counter() - t0
    print(f"backtest: {n:,} 1m bars, master strategy end to end (load {t_load:.2f} s + run {res.elapsed_s:.1f} s): "
          f"{n / t_all:,.0f} bars/s; compute_indicators alone {t_ind:.2f} s = {n / t_ind:,.0f} bars/s; "
          f"{len(res.trades)} trades; target >= 20,000 bars/s: {'met' if n / t_all >= 20_000 else 'MISSED'}")


def live(candles: int, pairs: int, data: Path) -> None:
    need = live_requirements("master", {}, "5m")
    window = need["window"]
    df = stitched_bars(data, (window + candles + 2) * 5)
    ts = df["timestamp"].to_numpy()
    o, h, lo, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    cls = live_feed_class(MasterStrategy.indicator_lines)
    params = MasterStrategy.param_values()
    feeds = []
    hist_n = window * 5
    for k in range(pairs):
        f = cls(pair=f"P{k}", strategy_cls=MasterStrategy, strategy_params=params, tf_ms=5 * MINUTE, window=window)
        bars = []
        for i in range(0, hist_n, 5):
            sl = slice(i, i + 5)
            bars.append(Bar(int(ts[i]), float(o[i]), float(h[sl].max()), float(lo[sl].min()), float(c[i + 4]),
                            float(v[sl].sum())))
        f.preload_history(bars)
        feeds.append(f)
    per_candle = []
    ready = 0
    for i in range(hist_n, hist_n + candles * 5):
        t0 = time.perf_counter()
        for f in feeds:
            f.push_minute(int(ts[i]), float(o[i]), float(h[i]), float(lo[i]), float(c[i]), float(v[i]), wake=False)
        dt = time.perf_counter() - t0
        if (i + 1) % 5 == 0:  # the minute that closes a 5m bar: the indicators run for every pair
            per_candle.append(dt * 1000)
    for f in feeds:  # the last computed row of each pair's queue: warm?
        last = None
        while not f._q.empty():
            last = f._q.get_nowait()
        ready += bool(last and last[1].get("ready") == 1.0)
    q = np.percentile(per_candle, [50, 99])
    print(f"live feed: {pairs} pairs, window {window} 5m bars ({need}), {len(per_candle)} closed 5m candles: "
          f"per candle (all pairs) p50 {q[0]:.2f} ms, p99 {q[1]:.2f} ms, max {max(per_candle):.2f} ms, mean "
          f"{statistics.fmean(per_candle):.2f} ms; {ready}/{pairs} pairs warm; target p99 <= 2 ms: "
          f"{'met' if q[1] <= 2 else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--candles", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    live(args.candles, args.pairs, args.data)
    backtest(args.bars, args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
