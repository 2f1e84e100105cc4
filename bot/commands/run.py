"""``bsmart run``: the main job, on the embedded defaults unless a config is given."""

from __future__ import annotations

import argparse

from bot.commands.common import add_config_argument, settings_or_exit
from bot.main_job import run_until_signal


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="start the main job (dry-run on embedded defaults; Ctrl-C stops it)")
    add_config_argument(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_until_signal(settings_or_exit(args))
