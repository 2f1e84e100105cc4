"""Hyperopt speed: trials per minute of ``run_hyperopt`` (what ``bsmart hyperopt`` runs) on the Backtrader path and
on the screening engine, same data, same strategy, same parameter spaces, same sampler, one run.

Each figure is the whole call: loading, every trial (optuna's sampling included), and the fold's closing work (for
the screening engine that includes re-running the best parameters on Backtrader, and on both the out-of-sample
Backtrader test), divided into the trials run. The per-trial rate without that fixed cost, and the whole call's rate
in this process's CPU time, are printed beside it. The two engines run ``--repeat`` times, alternated, and the
ratio is the median (on a shared machine one run of each can be off by half). freqtrade is not installed here, so
its figure is derived from issue 16's side-by-side measurement (bsmart hyperopt ran 2.1–2.4× freqtrade's trials per
minute), which makes the issue's target — 20× freqtrade — 9.5× the Backtrader figure. That is conservative when
the Backtrader path has become faster since (the risk book's correlation input did, for both engines); when
freqtrade is importable the bench says so, but running its hyperopt is not automated.

Last figures (2026-12-07, 2 CPUs shared with other sessions, ``nice -n 10``, ``--repeat 3``; the run of the median
ratio; see /work/notes/16-hyperopt-speed.md):

    rsi_bollinger, BTC 1m shipped data (default)             52.6 vs 2016.4 trials/min: 38.3× → 80–92× freqtrade
    rsi_bollinger, BTC,ETH,SOL 15m --bt-epochs 20            174.6 vs 2231.0 trials/min: 12.8× → 27–31× freqtrade
      (same command on the tree before the risk book's hourly arrays: 201.4 vs 1662.7, 8.3× → 17–20×: NOT met)
    rsi_bollinger, BTC 15m / BTC,ETH,SOL 1h --bt-epochs 20   14.2× / 11.8×

    .venv/bin/python bench/hyperopt_speed.py [--timeframe 1m] [--pairs BTC] [--bt-epochs 10] [--epochs 300]
        [--spaces buy sell] [--datadir DIR] [--strategy rsi_bollinger|oscillation|breakout|trend] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from trader.backtest.runner import BacktestRequest
from trader.optimize.study import HyperoptRequest, plan_hyperopt, run_hyperopt
from trader.screening.engine import prepare, run_screening

ISSUE_RATIO = (2.1, 2.4)  # bsmart hyperopt / freqtrade hyperopt trials per minute, issue 16's measurement
TARGET_VS_FREQTRADE = 20.0


@dataclass(frozen=True)
class Run:
    whole: float  # trials/min over the whole call (wall clock)
    inner: float  # trials/min from the first trial to the last (wall clock)
    cpu: float  # trials/min over the whole call in this process's CPU time (steadier on a shared machine)
    trials: int
    wall: float
    engine: str


def measure(request: HyperoptRequest) -> Run:
    plan = plan_hyperopt(request)
    stamps: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_hyperopt(request, progress=lambda p: stamps.append(time.perf_counter()) if p.stage ==
                          "optimising" else None, plan=plan)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    trials = sum(f.new_trials for f in result.folds)
    # Progress fires after every trial (jobs=1): the span from the first to the last is trials − 1 trials' work.
    inner = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 if len(stamps) > 2 else float("nan")
    return Run(trials / wall * 60, inner, trials / cpu * 60, trials, wall, result.engine_line())


def _line(name: str, r: Run) -> str:
    return (f"{name}: {r.whole:8.1f} trials/min whole call ({r.trials} trials in {r.wall:.1f} s), "
            f"{r.inner:8.1f} per trial, {r.cpu:8.1f} in CPU time")


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
    ap.add_argument("--repeat", type=int, default=3, help="alternated runs of both; the ratio is their median")
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

    bts, scs = [], []
    for n in range(args.repeat):  # alternated, so a change in the machine's load falls on both
        bts.append(measure(HyperoptRequest(**common, epochs=args.bt_epochs, engine="backtrader")))
        print(_line(f"run {n + 1} Backtrader path ", bts[-1]))
        scs.append(measure(HyperoptRequest(**common, epochs=args.epochs, engine="screening")))
        print(_line(f"run {n + 1} screening engine", scs[-1]))
    print(f"  {scs[-1].engine}")
    bt_rate = statistics.median(r.whole for r in bts)
    ratio = statistics.median(s.whole / b.whole for b, s in zip(bts, scs, strict=True))
    ratio_inner = statistics.median(s.inner / b.inner for b, s in zip(bts, scs, strict=True))
    ratio_cpu = statistics.median(s.cpu / b.cpu for b, s in zip(bts, scs, strict=True))
    print(f"screening / Backtrader (median of {args.repeat}): {ratio:.1f}× whole call, {ratio_inner:.1f}× per trial, "
          f"{ratio_cpu:.1f}× in CPU time; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if importlib.util.find_spec("freqtrade") is not None:
        print("freqtrade is importable: run its hyperopt on the same data for the direct figure "
              "(not automated here)")
    else:
        lo, hi = ISSUE_RATIO
        print(f"freqtrade: not installed; from issue 16's measurement (bsmart = {lo}–{hi}× freqtrade) its rate here "
              f"would be {bt_rate / hi:.1f}–{bt_rate / lo:.1f} trials/min (whole call)")
        need = TARGET_VS_FREQTRADE / lo
        print(f"target {TARGET_VS_FREQTRADE:.0f}× freqtrade ≈ {need:.1f}× the Backtrader path: screening is "
              f"{ratio * lo:.0f}–{ratio * hi:.0f}× freqtrade (whole call): {'met' if ratio >= need else 'NOT met'}")

if __name__ == "__main__":
    main()
