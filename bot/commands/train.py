"""``bsmart train``: build features from stored candles, evaluate out of sample (purged walk-forward), fit and
register ML models. TensorFlow is imported only when a GRU/LSTM is trained (never for ``--help``)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from bot.commands.common import add_config_argument, settings_or_exit

MODELS = ("gru", "lstm", "xgb")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train ML models (GRU/LSTM direction, XGBoost reversal) and "
                                                 "register them with out-of-sample metrics")
    add_config_argument(parser)
    parser.add_argument("--pairs", help="comma-separated (default: the config's pair_whitelist)")
    parser.add_argument("--timerange", default="", help="YYYYMMDD-YYYYMMDD, UTC, end exclusive (default: all data)")
    parser.add_argument("--model", default="all", choices=[*MODELS, "all"], help="which model (default all)")
    parser.add_argument("--datadir", help="candle store (default <user_data>/data/binance/futures, else the "
                                          "sample data shipped with the package)")
    parser.add_argument("--models-dir", help="registry (default <user_data>/models)")
    parser.add_argument("--folds", type=int, default=3, help="walk-forward folds for the evaluation (0: skip)")
    parser.add_argument("--epochs", type=int, default=15, help="GRU/LSTM epochs at most (early stopping)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="fixed trading threshold on the probabilities (default: chosen per target on each "
                             "validation window)")
    parser.add_argument("--activate", choices=["if-better", "always", "never"], default="if-better",
                        help="if-better (default): only when it beats the baselines and nothing is active yet")
    parser.set_defaults(func=_run)


def _bar(fraction: float, message: str, started: float) -> None:
    width = 30
    filled = int(width * min(max(fraction, 0.0), 1.0))
    sys.stderr.write(f"\rtrain [{'#' * filled}{'.' * (width - filled)}] {int(100 * fraction):3d}% "
                     f"{time.monotonic() - started:5.0f}s {message[:40]:<40}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _f(v: object, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v * 100:.1f}%" if pct else f"{v:.4f}" if isinstance(v, float) else str(v)


def report_lines(name: str, version: str, evaluation: dict | None) -> list[str]:
    if not evaluation:
        return [f"{name} {version}: no out-of-sample evaluation (--folds 0)"]
    lines = [f"{name} {version}: out of sample, {len(evaluation['folds'])} purged walk-forward folds "
             f"(purge {evaluation['purge_ms'] // 60000} min + embargo {evaluation['embargo_ms'] // 60000} min)"]
    lines.append(f"  {'target':<9} {'':<12} {'acc':>7} {'bal.acc':>7} {'AUC':>7} {'logloss':>8} {'ECE':>7}")
    for t, rep in evaluation["targets"].items():
        for who in ("model", "majority", "persistence"):
            s = rep[who]
            lines.append(f"  {t if who == 'model' else '':<9} {who:<12} {_f(s['accuracy'], True):>7} "
                         f"{_f(s['balanced_accuracy'], True):>7} {_f(s['auc']):>7} {_f(s['log_loss']):>8} "
                         f"{_f(s['ece']):>7}")
        tr, bt, bp = rep["trading"], rep["backtest"], rep["backtest_persistence"]
        thr = "/".join(f"{x:.2f}" for x in rep.get("thresholds", [])) or evaluation["threshold"]
        lines.append(f"  {'':<9} at threshold {thr}: {tr['calls']} calls "
                     f"({_f(tr['coverage'], True)} of rows), precision {_f(tr['precision'], True)}; "
                     f"after costs {bt['trades']} trades, {_f(bt['mean_net_bps'])} bps/trade "
                     f"(persistence: {bp['trades']} trades, {_f(bp['mean_net_bps'])} bps/trade)")
    if "seed_target" in evaluation:
        st = evaluation["seed_target"]
        lines.append(f"  seed target (reversal accuracy > 65 %): {'MET' if st['met'] else 'NOT MET'} "
                     f"(precision {_f(st['value'], True)} on {st['calls']} calls)")
    rs = evaluation.get("regime_subsets")
    if rs:
        lines.append(f"  per-regime feature subsets: {'USED' if rs['used'] else 'not used'} at prediction "
                     f"(log loss {_f(rs['log_loss_regime_subsets'])} with them vs {_f(rs['log_loss_all_features'])} "
                     f"with all features on {rs['rows']} test rows; used only when better by > 2 standard errors)")
    return lines


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    from trader.config.pairs import normalize_pair
    from trader.data.store import bundled_data_dir, candle_path
    from trader.data.timerange import parse_timerange

    try:
        pairs = ([normalize_pair(p) for p in args.pairs.split(",") if p.strip()] if args.pairs
                 else list(settings.pair_whitelist))
        span = parse_timerange(args.timerange) if args.timerange else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.datadir:
        data_dir = Path(args.datadir)
    elif all(candle_path(settings.data_dir, p, "1m").exists() or candle_path(settings.data_dir, p, "5m").exists()
             for p in pairs):
        data_dir = settings.data_dir
    else:
        data_dir = bundled_data_dir()
    models_dir = Path(args.models_dir) if args.models_dir else settings.models_dir
    names = list(MODELS) if args.model == "all" else [args.model]
    from trader.ml.registry import ModelRegistry
    from trader.ml.training import TrainConfig, build_dataset, train_models

    started = time.monotonic()
    print(f"data: {data_dir}; models: {models_dir}", file=sys.stderr)
    try:
        ds = build_dataset(data_dir, pairs, span.start_ms if span else None, span.end_ms if span else None,
                           progress=lambda f, m: _bar(0.1 * f, m, started))
        cfg = TrainConfig(folds=args.folds, epochs=args.epochs, threshold=args.threshold)
        results = train_models(ds, names, cfg, ModelRegistry(models_dir), activate=args.activate,
                               progress=lambda f, m: _bar(0.1 + 0.9 * f, m, started))
    except (FileNotFoundError, ValueError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print("\n".join(report_lines(r.name, r.version, r.evaluation)))
        print(f"  → {r.note}")
    return 0
