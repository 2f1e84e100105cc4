"""``bsmart models``: the registry's versions, their out-of-sample metrics and which is active;
``bsmart models activate NAME VERSION`` / ``deactivate NAME``. Never imports TensorFlow."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

from bot.commands.common import add_config_argument, settings_or_exit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list ML model versions and metrics; activate one")
    add_config_argument(parser)
    parser.add_argument("--models-dir", help="registry (default <user_data>/models)")
    sub = parser.add_subparsers(dest="models_action", metavar="ACTION")
    sub.add_parser("list", help="every version, its metrics and which is active (the default)")
    act = sub.add_parser("activate", help="make a version the active one (checked first)")
    act.add_argument("name")
    act.add_argument("version")
    de = sub.add_parser("deactivate", help="stop using a model (the engine trades without it)")
    de.add_argument("name")
    parser.set_defaults(func=_run)


def _day(ms: int | None) -> str:
    return "-" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    from trader.ml.registry import ModelError, ModelRegistry

    reg = ModelRegistry(Path(args.models_dir) if args.models_dir else settings.models_dir)
    action = getattr(args, "models_action", None) or "list"
    if action == "activate":
        try:
            reg.activate(args.name, args.version)
        except ModelError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        print(f"{args.name} {args.version} is now active")
        return 0
    if action == "deactivate":
        if not reg.deactivate(args.name):
            print(f"{args.name} has no active version", file=sys.stderr)
            return 1
        print(f"{args.name} deactivated")
        return 0
    rows = reg.rows()
    if not rows:
        print(f"no models in {reg.root} (train some: bsmart train)")
        return 0
    print(f"{'':1} {'name':<8} {'version':<7} {'kind':<5} {'trained on':<23} {'expires':<10} "
          f"{'target':<9} {'logloss':>7} {'majority':>8} {'persist':>7} {'bal.acc':>7} {'prec.':>6} {'bps/tr':>7}")
    for r in rows:
        tr = r["training"]
        flag = "*" if r["active"] else " "
        span = f"{_day(tr.get('start_ms'))}→{_day(tr.get('end_ms'))}"
        exp = "expired" if r["expired"] else _day(r["expires_ms"])
        targets = r["summary"] or {"-": {}}
        for i, (t, s) in enumerate(targets.items()):
            head = (f"{flag} {r['name']:<8} {r['version']:<7} {r['kind']:<5} {span:<23} {exp:<10}" if i == 0
                    else " " * 59)
            print(f"{head} {t:<9} {_num(s.get('log_loss')):>7} {_num(s.get('ll_majority')):>8} "
                  f"{_num(s.get('ll_persistence')):>7} {_num(s.get('bal_acc')):>7} {_num(s.get('precision'), '.2f'):>6} "
                  f"{_num(s.get('net_bps'), '.1f'):>7}")
        if r.get("seed_target"):
            st = r["seed_target"]
            print(f"{'':<12}seed target (reversal accuracy > 65 %): {'MET' if st['met'] else 'NOT MET'} "
                  f"(precision {_num(st.get('value'), '.1%')} on {st.get('calls')} calls)")
        if r.get("regime_subsets"):
            rs = r["regime_subsets"]
            print(f"{'':<12}per-regime feature subsets: {'used' if rs['used'] else 'not used'} (log loss "
                  f"{_num(rs.get('log_loss_regime_subsets'))} vs {_num(rs.get('log_loss_all_features'))} with all)")
        if r.get("promotion"):
            print(f"{'':<12}promotion: {r['promotion'].get('reason')}")
    print("* = active. Metrics are out of sample (purged walk-forward); logloss beside the majority and "
          "persistence baselines.")
    return 0
