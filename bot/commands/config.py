"""``bsmart config check|show``."""

from __future__ import annotations

import argparse
import json

from bot.commands.common import add_config_argument, settings_or_exit
from trader.config.loader import redacted_dump


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate or show the effective configuration")
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate the configuration; exit 2 listing every problem")
    add_config_argument(check)
    check.set_defaults(func=_check)
    show = actions.add_parser("show", help="print the effective configuration as JSON, secrets redacted")
    add_config_argument(show)
    show.set_defaults(func=_show)


def _check(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    mode = "dry-run" if settings.dry_run else "LIVE"
    print(f"configuration OK: {mode}, leverage {settings.leverage}x, {len(settings.pair_whitelist)} pairs")
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    print(json.dumps(redacted_dump(settings), indent=2, ensure_ascii=False))
    return 0
