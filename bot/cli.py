"""The ``bsmart`` command line: each subcommand lives in ``bot.commands.<name>`` and registers itself here.

Only commands that work are listed, so ``bsmart --help`` is an honest map of what the product can do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from trader import __version__

# Order is the order shown in --help.
COMMAND_MODULES = [
    "bot.commands.run",
    "bot.commands.demo",
    "bot.commands.config",
    "bot.commands.secrets",
    "bot.commands.db",
    "bot.commands.sim",
    "bot.commands.backtest",
    "bot.commands.hyperopt",
    "bot.commands.download",
    "bot.commands.reconcile",
    "bot.commands.backup",
    "bot.commands.restore",
    "bot.commands.train",
    "bot.commands.models",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bsmart",
        description="binance-smart: Binance USDⓈ-M futures trading, controlled from Telegram.",
    )
    parser.add_argument("--version", action="version", version=f"bsmart {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
