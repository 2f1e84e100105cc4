"""Hyperopt speed: trials per minute of ``run_hyperopt`` (what ``bsmart hyperopt`` runs) on the Backtrader path and
on the screening engine, same data, same strategy, same parameter spaces, same sampler, one run.

Each figure is the whole call: loading, every trial, and the fold's closing work (for the screening engine that
includes re-running the best parameters on Backtrader, and on both the out-of-sample Backtrader test), divided
into the trials run. The per-trial rate without that fixed cost is printed beside it. freqtrade's hyperopt is run
on the same data when it is importable; it is not installed here, so its figure is derived from issue 16's
side-by-side measurement (bsmart hyperopt ran 2.1–2.4× freqtrade's trials per minute), which makes the issue's
target — 20× freqtrade — about 10× today's Backtrader figure.

    .venv/bin/python bench/hyperopt_speed.py [--timeframe 1m] [--pairs BTC] [--bt-epochs 10] [--epochs 300]
        [--spaces buy sell] [--datadir DIR] [--strategy rsi_bollinger|oscillation|breakout|trend]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import optuna

from trader.backtest.runner import BacktestRequest
from trader.optimize.study import HyperoptRequest, plan_hyperopt, run_hyperopt
from trader.screening.engine import prepare, run_screening

ISSUE_RATIO = (2.1, 2.4)  # bsmart hyperopt / freqtrade hyperopt trials per minute, issue 16's measurement
TARGET_VS_FREQTRADE = 20.0


def measure(request: HyperoptRequest) -> tuple[float, float, int, float, str]:
    """(whole-call trials/min, trials/min without the fold's fixed work, trials, wall s, engine line)."""
    plan = plan_hyperopt(request)
    stamps: list[float] = []
    t0 = time.perf_counter()
    result = run_hyperopt(request, progress=lambda p: stamps.append(time.perf_counter()) if p.stage ==
                          "optimising" else None, plan=plan)
    wall = time.perf_counter() - t0
    trials = sum(f.new_trials for f in result.folds)
    # Progress fires after every trial (jobs=1): the span from the first to the last is trials − 1 trials' work.
    inner = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 if len(stamps) > 2 else float("nan")
    return trials / wall * 60, inner, trials, wall, result.engine_line()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default="rsi_bollinger")
    ap.add_argument("--pairs", default="BTC", help="comma-separated, e.g. BTC,ETH,SOL (one account)")
    ap.add_argument("--timeframe", default="1m")
    ap.add_argument("--datadir", type=Path, default=None, help="default: the data shipped with the package")
    ap.add_argument("--spaces", nargs="+", default=["buy", "sell"])
    ap.add_argument("--bt-epochs", type=int, default=10, help="trials on the Backtrader path")
    ap.add_argument("--epochs", type=int, default=300, help="trials on the screening engine")
    ap.add_argument("--sampler", default="tpe")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pairs = tuple(args.pairs.split(","))
    common = dict(strategy=args.strategy, pairs=pairs, timeframe=args.timeframe, data_dir=args.datadir,
                  spaces=tuple(args.spaces), sampler=args.sampler, folds=1, seed=7)
    plan = plan_hyperopt(HyperoptRequest(**common, epochs=1))
    fold = plan.folds[0]
    probe = BacktestRequest(strategy=args.strategy, pairs=pairs, timeframe=args.timeframe, data_dir=args.datadir,
                            start_ms=fold.train_start_ms, end_ms=fold.train_end_ms)
    t = time.perf_counter()
    run_screening(probe, prepare(probe))  # compiles the kernel, or loads it from numba's cache
    warm = time.perf_counter() - t
    print(f"{args.strategy} on {args.pairs} {args.timeframe}, train window {fold.label()}, {len(plan.dims)} parameters "
          f"({', '.join(d.name for d in plan.dims)}), sampler {args.sampler}")
    print(f"screening kernel warm-up (compile or cache load, once per process): {warm:.2f} s")

    bt = measure(HyperoptRequest(**common, epochs=args.bt_epochs, engine="backtrader"))
    print(f"Backtrader path : {bt[0]:8.1f} trials/min whole call ({bt[2]} trials in {bt[3]:.1f} s), "
          f"{bt[1]:8.1f} trials/min per trial")
    sc = measure(HyperoptRequest(**common, epochs=args.epochs, engine="screening"))
    print(f"screening engine: {sc[0]:8.1f} trials/min whole call ({sc[2]} trials in {sc[3]:.1f} s), "
          f"{sc[1]:8.1f} trials/min per trial")
    print(f"  {sc[4]}")
    print(f"screening / Backtrader: {sc[0] / bt[0]:.1f}× whole call, {sc[1] / bt[1]:.1f}× per trial")
    if importlib.util.find_spec("freqtrade") is not None:
        print("freqtrade is importable: run its hyperopt on the same data for the direct figure "
              "(not automated here)")
    else:
        lo, hi = ISSUE_RATIO
        print(f"freqtrade: not installed; from issue 16's measurement (bsmart = {lo}–{hi}× freqtrade) its rate here "
              f"would be {bt[0] / hi:.1f}–{bt[0] / lo:.1f} trials/min (whole call)")
        need = TARGET_VS_FREQTRADE / lo
        print(f"target {TARGET_VS_FREQTRADE:.0f}× freqtrade ≈ {need:.1f}× the Backtrader path: screening is "
              f"{sc[0] / bt[0] * lo:.0f}–{sc[0] / bt[0] * hi:.0f}× freqtrade (whole call): "
              f"{'met' if sc[0] / bt[0] >= need else 'NOT met'}")


if __name__ == "__main__":
    main()
