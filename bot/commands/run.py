"""``bsmart run``: the main job, on the embedded defaults unless a config is given."""

from __future__ import annotations

import argparse
import sys

from bot.commands.common import add_config_argument, settings_or_exit
from bot.main_job import run_until_signal
from trader.config.loader import resolve_config_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="start the main job (dry-run on embedded defaults; Ctrl-C stops it)")
    add_config_argument(parser)
    parser.add_argument("--live", action="store_true",
                        help="confirm live trading with real money (required when dry_run is false)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    if not settings.dry_run and not args.live:
        print("dry_run is false: this would trade real money. Start again with --live to confirm.", file=sys.stderr)
        return 2
    if settings.dry_run and args.live:
        print("--live given but dry_run is true: set dry_run to false to trade live.", file=sys.stderr)
        return 2
    return run_until_signal(settings, resolve_config_path(args.config))
