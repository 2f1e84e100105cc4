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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command, or with ``only`` (a command's name) just that one: each command module imports what its
    command needs (the live engine, ccxt, Telegram, TensorFlow...), and ``bsmart backtest`` should not pay seconds
    and hundreds of MB of imports for ``bsmart run``'s modules."""
    parser = argparse.ArgumentParser(
        prog="bsmart",
        description="binance-smart: Binance USDⓈ-M futures trading, controlled from Telegram.",
    )
    parser.add_argument("--version", action="version", version=f"bsmart {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if only is None or name == f"bot.commands.{only}":
            importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    first = args_in[0] if args_in else ""
    # A known command name first: load that command alone (its module registers the same name).
    parser = build_parser(first if f"bot.commands.{first}" in COMMAND_MODULES else None)
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
