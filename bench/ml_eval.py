"""An honest out-of-sample evaluation of the ML models on the long shared history (../shared/data, 5m candles
and funding of BTC/ETH/SOL perpetuals): purged, embargoed walk-forward folds, every figure beside the majority and
persistence baselines, precision at the trading threshold (chosen on each fold's validation window) and a simple
vectorised after-cost backtest of the signal (taker fee + slippage both sides, funding at settlements; not the
engine's backtest). Prints the report and writes it as JSON.

    .venv/bin/python bench/ml_eval.py [--pairs BTC,ETH,SOL] [--timerange 20250401-20260219] [--models xgb,gru,lstm]
        [--folds 4] [--epochs 6] [--stride 6] [--out reports/ml_eval.json]

Sized for ≤ 15 minutes on two shared cores with the defaults. Tests never read ../shared/data; this does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bot.commands.train import report_lines  # noqa: E402
from trader.config.pairs import normalize_pair  # noqa: E402
from trader.data.timerange import parse_timerange  # noqa: E402
from trader.ml.training import MODEL_SPECS, TrainConfig, build_dataset, evaluate  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "futures"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--pairs", default="BTC,ETH,SOL")
    ap.add_argument("--timerange", default="20250401-20260219")
    ap.add_argument("--models", default="xgb,gru,lstm")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--stride", type=int, default=6)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    pairs = [normalize_pair(p) for p in args.pairs.split(",")]
    span = parse_timerange(args.timerange)
    t0 = time.perf_counter()
    ds = build_dataset(Path(args.data), pairs, span.start_ms, span.end_ms)
    print(f"dataset: {len(ds):,} rows of 5m ({', '.join(pairs)}; {args.timerange}), "
          f"{int(ds.sample_ok.sum()):,} samples, built in {time.perf_counter() - t0:.0f} s", flush=True)
    cfg = TrainConfig(folds=args.folds, epochs=args.epochs, stride=args.stride, patience=2)
    results = {}
    for kind in args.models.split(","):
        t = time.perf_counter()
        ev = evaluate(MODEL_SPECS[kind], ds, cfg, progress=lambda f, m: print(f"  {m}", file=sys.stderr, flush=True))
        ev["seconds"] = time.perf_counter() - t
        results[kind] = ev
        print("\n".join(report_lines(kind, f"({ev['seconds']:.0f} s)", ev)), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"pairs": pairs, "timerange": args.timerange, "config": {
            "folds": args.folds, "epochs": args.epochs, "stride": args.stride}, "results": results}, indent=1,
            default=float))


if __name__ == "__main__":
    main()
