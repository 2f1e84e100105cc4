"""``bsmart hyperopt``: optimise a strategy's declared parameter spaces with optuna, judged out of sample.

Every argument is checked (and the storage URL parsed, its driver imported) before a trial runs or a file is
written; a bad one exits 2. Results print as a table and go to <user_data>/hyperopt_results/<study>/<time>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands.common import add_config_argument, run_args, settings_or_exit
from trader.optimize.losses import LOSS_DESCRIPTIONS
from trader.optimize.samplers import SAMPLERS
from trader.optimize.study import HyperoptProgress, HyperoptRequest, plan_hyperopt, run_hyperopt
from trader.strategy.reference import STRATEGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hyperopt", help="optimise strategy parameters (optuna: tpe, nsga2, grid) with walk-forward validation")
    add_config_argument(parser)
    parser.add_argument("--strategy", default="rsi_bollinger", help=f"one of: {', '.join(sorted(STRATEGIES))}")
    parser.add_argument("--spaces", nargs="+", default=["buy", "sell"], metavar="SPACE",
                        help="parameter spaces declared on the strategy (e.g. buy sell stoploss roi, or all)")
    parser.add_argument("--epochs", type=int, default=100, help="new trials per walk-forward fold (default 100)")
    parser.add_argument("--sampler", default="tpe", help=f"one of: {', '.join(SAMPLERS)} (default tpe)")
    parser.add_argument("--loss", default="sharpe", help="what to maximise: " + "; ".join(
        f"{k}: {v}" for k, v in LOSS_DESCRIPTIONS.items()) + " (default sharpe)")
    parser.add_argument("--drawdown-penalty", type=float, default=1.0, help="weight of |max drawdown| in "
                                                                            "profit_drawdown (default 1)")
    parser.add_argument("--min-trades", type=int, default=1, help="fewer trades in a window score as a failure")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--storage", help="optuna storage URL shared by runs and machines: sqlite:///file.sqlite "
                                          "(one machine), postgresql://… or mysql://… (several); default in memory")
    parser.add_argument("--study-name", help="default: derived from strategy, pairs, timeframe, loss, spaces and "
                                             "windows, so the same command resumes the same study")
    parser.add_argument("--folds", type=int, default=3, help="walk-forward folds (default 3; with --train-days and "
                                                              "--test-days: at most this many, the newest)")
    parser.add_argument("--train-days", type=float, help="train window length (default: 3 × test)")
    parser.add_argument("--test-days", type=float, help="test window length (default: range / (folds + 3))")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engine", default="auto", choices=("auto", "screening", "backtrader"),
                        help="what runs the trials: auto (the screening engine when the strategy has a twin for the "
                             "run, else Backtrader), screening (refuse without a twin), backtrader (default auto); "
                             "the best parameters are always re-run on Backtrader")
    parser.add_argument("--pairs", help="comma-separated (default: the config's pair_whitelist)")
    parser.add_argument("--timeframe", default="15m", help="bar size (default 15m)")
    parser.add_argument("--timerange", default="", help="YYYYMMDD-YYYYMMDD, UTC, end exclusive (default: all data)")
    parser.add_argument("--leverage", type=int, help="default: the config's leverage")
    parser.add_argument("--wallet", type=float, default=10_000.0, help="starting wallet in USDT (default 10000)")
    parser.add_argument("--datadir", help="candle store (default <user_data>/data/binance/futures, else the "
                                          "sample data shipped with the package)")
    parser.add_argument("--export", metavar="DIR", help="results root (default <user_data>/hyperopt_results)")
    parser.set_defaults(func=_run)


def _progress(p: HyperoptProgress) -> None:
    width = 30
    filled = int(width * p.fraction)
    sys.stderr.write(f"\rhyperopt [{'#' * filled}{'.' * (width - filled)}] {int(100 * p.fraction):3d}% "
                     f"{p.message():<60}")
    if p.stage == "done":
        sys.stderr.write("\n")
    sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    try:
        run = run_args(args, settings)
        data_dir = run.data_dir
        request = HyperoptRequest(
            strategy=args.strategy, pairs=tuple(run.pairs), timeframe=run.timeframe, start_ms=run.start_ms,
            end_ms=run.end_ms, leverage=run.leverage, initial_wallet=args.wallet, data_dir=data_dir,
            spaces=tuple(args.spaces),
            epochs=args.epochs, sampler=args.sampler, loss=args.loss, min_trades=args.min_trades,
            drawdown_penalty=args.drawdown_penalty, folds=args.folds, train_days=args.train_days,
            test_days=args.test_days, jobs=args.jobs, storage=args.storage, study_name=args.study_name,
            seed=args.seed, engine=args.engine)
        plan = plan_hyperopt(request)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc} (download it with: bsmart download)", file=sys.stderr)
        return 1
    print(f"data: {data_dir}; study {plan.study_name}: {len(plan.folds)} folds, {len(plan.dims)} parameters "
          f"({', '.join(d.name for d in plan.dims)}); trials on "
          f"{'the screening engine' if plan.engine == 'screening' else 'Backtrader'}"
          f"{f' ({plan.engine_note})' if plan.engine_note else ''}", file=sys.stderr)
    try:
        result = run_hyperopt(request, progress=_progress, plan=plan)
    except ValueError as exc:  # e.g. the study name exists with other settings
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    out = result.write_json(Path(args.export) if args.export else settings.user_data_dir / "hyperopt_results")
    print(f"exported to {out}")
    return 0
