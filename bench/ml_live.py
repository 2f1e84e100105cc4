"""What the live ML predictions cost the engine (issue 14): (1) the hand-over of a closed bar
(``LivePredictions.observe``, on the host loop) per bar; (2) the worker's features + prediction per pair and 5m bar
on 24 days of 1m candles and on a 5m feed; (3) the live feed's per-candle cost with 10 pairs
(bench/strategy_speed.py's ``live``) alone and while the ML worker computes predictions back to back on another
thread — the worker is a thread, so its pandas/numpy work competes for the GIL with the feed and the strategy.

    .venv/bin/python bench/ml_live.py [--candles 300] [--models-dir DIR]

Without --models-dir it trains a tiny XGBoost reversal model on the shipped data first (seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtest_speed import DEFAULT_DATA  # noqa: E402
from strategy_speed import live as feed_step  # noqa: E402

from trader.data.store import bundled_data_dir, load_candles, resample  # noqa: E402
from trader.live.feed import Bar  # noqa: E402
from trader.ml.live import GRID_MS, LivePredictions  # noqa: E402
from trader.ml.predictor import Predictor  # noqa: E402

BTC = "BTC/USDT:USDT"


def _models(root: Path) -> Path:
    from trader.ml.registry import ModelRegistry
    from trader.ml.training import TrainConfig, build_dataset, train_models
    from trader.ml.xgb_model import XGBParams

    ds = build_dataset(bundled_data_dir(), [BTC], 1746403200000, 1747612800000)
    train_models(ds, ["xgb"], TrainConfig(folds=0, xgb=XGBParams(rounds=60, early_stopping=10), permutation_rows=300),
                 ModelRegistry(root), activate="always", evaluate_oos=False)
    return root


def _bars(tf: str) -> list[Bar]:
    df = load_candles(bundled_data_dir(), BTC, "1m")
    if tf != "1m":
        df = resample(df, "1m", tf)
    return [Bar(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume) for r in df.itertuples(index=False)]


def compute_cost(predictor: Predictor, tf: str, n: int = 20) -> list[float]:
    bars = _bars(tf)
    tf_ms = bars[1].ts_ms - bars[0].ts_ms
    live = LivePredictions(predictor, None).start()
    try:
        cut = len(bars) - n * (GRID_MS // tf_ms) - 1
        live.observe(BTC, bars[:cut], False, tf_ms)
        for b in bars[cut:]:
            live.observe(BTC, [b], True, tf_ms)
            if (b.ts_ms + tf_ms) % GRID_MS == 0:
                grid = b.ts_ms + tf_ms
                deadline = time.monotonic() + 10
                while (r := live.latest(BTC)) is None or r.close_ms < grid:
                    if time.monotonic() > deadline:
                        raise TimeoutError("no prediction")
                    time.sleep(0.001)
        return live.compute_ms[-n:]
    finally:
        live.stop()


def observe_cost() -> np.ndarray:
    class _P:
        required_rows = 1

    live = LivePredictions(_P(), None)  # no worker: only the hand-over is timed
    bars = _bars("1m")
    live.observe(BTC, bars[:30000], False, 60_000)
    out = []
    for b in bars[30000:40000]:
        t = time.perf_counter_ns()
        live.observe(BTC, [b], True, 60_000)
        out.append(time.perf_counter_ns() - t)
    return np.asarray(out) / 1000


def busy_worker(predictor: Predictor, stop: threading.Event) -> threading.Thread:
    """Predictions back to back (ten pairs' worth at every 5m close, and more), until ``stop``."""
    bars = _bars("1m")

    def run() -> None:
        live = LivePredictions(predictor, None)
        live.observe(BTC, bars[-24 * 1440:], False, 60_000)
        w = live._windows[BTC]
        grid = w.last_close - w.last_close % GRID_MS
        while not stop.is_set():
            live._compute(BTC, grid, w.upto(grid, live.lookback_ms), w)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candles", type=int, default=300)
    ap.add_argument("--models-dir")
    args = ap.parse_args()
    root = Path(args.models_dir) if args.models_dir else _models(Path(tempfile.mkdtemp(prefix="ml-live-")))
    predictor = Predictor.load_active(root)
    if predictor is None:
        print(f"no active model in {root}")
        return 2
    obs = observe_cost()
    print(f"observe (host loop, per closed bar): p50 {np.percentile(obs, 50):.1f} µs, p99 "
          f"{np.percentile(obs, 99):.1f} µs, max {obs.max():.0f} µs")
    for tf in ("1m", "5m"):
        c = compute_cost(predictor, tf)
        print(f"worker, features + prediction per pair and 5m bar, {tf} feed, 24 days: median {np.median(c):.0f} ms, "
              f"max {max(c):.0f} ms (×10 pairs ≈ {10 * np.median(c) / 1000:.1f} s of one core per 5 minutes)")
    alone = feed_step(args.candles, 10, DEFAULT_DATA)
    stop = threading.Event()
    t = busy_worker(predictor, stop)
    try:
        busy = feed_step(args.candles, 10, DEFAULT_DATA)
    finally:
        stop.set()
        t.join()
    print(f"feed step with 10 pairs, p99: {alone[1]:.2f} ms alone, {busy[1]:.2f} ms with the ML worker busy the "
          f"whole time (worst case; really ≈ 1 s in every 300) — load average {os.getloadavg()[0]:.2f}, shared "
          f"machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
