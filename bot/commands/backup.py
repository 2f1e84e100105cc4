"""``bsmart backup``: copy the ledger, the models and the config into user_data/backups/<UTC time>/, keep the newest N.

Safe while the main job runs (SQLite's online backup API). ``--list`` shows the backups there are."""

from __future__ import annotations

import argparse
import sys

from bot.commands.common import add_config_argument, settings_or_exit
from trader.config.loader import resolve_config_path
from trader.ops.backup import BackupError, create_backup, list_backups, read_backup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backup", help="back up the ledger database, models and config now (rotated)")
    add_config_argument(parser)
    parser.add_argument("--keep", type=int, metavar="N", help="keep the newest N backups (default: backup.keep)")
    parser.add_argument("--list", action="store_true", help="list the backups instead of taking one")
    parser.set_defaults(func=_backup)


def _backup(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    if args.list:
        found = list_backups(settings.backups_dir)
        if not found:
            print(f"no backups in {settings.backups_dir}")
        for path in found:
            try:
                b = read_backup(path)
            except BackupError as exc:
                print(f"{path.name}  unreadable: {exc}")
                continue
            extras = [x for x, present in (("models", b.has_models), ("config", b.has_config)) if present]
            print(f"{b.name}  {sum(b.tables.values())} rows in {len(b.tables)} tables"
                  f"{'  + ' + ', '.join(extras) if extras else ''}")
        return 0
    if args.keep is not None and args.keep < 1:
        print("--keep must be at least 1", file=sys.stderr)
        return 2
    try:
        backup = create_backup(settings, resolve_config_path(args.config), keep=args.keep)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backup written: {backup.path} ({sum(backup.tables.values())} rows in {len(backup.tables)} tables"
          f"{', models' if backup.has_models else ''}{', config' if backup.has_config else ''})")
    return 0
