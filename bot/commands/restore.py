"""``bsmart restore``: ``--verify [BACKUP]`` checks a backup in a temporary directory (integrity, row counts,
checksums; the newest when none is named); ``restore BACKUP`` puts it in place, refused while a main job runs."""

from __future__ import annotations

import argparse
import sys

from bot.commands.common import add_config_argument, settings_or_exit
from trader.ops.backup import BackupError, resolve_backup, restore_backup, verify_backup
from trader.ops.runlock import LockedError, RunLock


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("restore", help="verify a backup (--verify) or restore one (not while running)")
    add_config_argument(parser)
    parser.add_argument("backup", nargs="?", metavar="BACKUP",
                        help="a backup's name (as `bsmart backup --list` shows) or its directory")
    parser.add_argument("--verify", action="store_true",
                        help="only check the backup (the newest when none is named) in a temporary directory")
    parser.set_defaults(func=_restore)


def _restore(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    if not args.verify and args.backup is None:
        print("name the backup to restore (`bsmart backup --list`), or use --verify", file=sys.stderr)
        return 2
    try:
        path = resolve_backup(settings, args.backup)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.verify:
        result = verify_backup(path)
        for table, (want, got) in sorted(result.tables.items()):
            print(f"  {table:<28} manifest {want:>8}  restored {got if got is not None else '-':>8}")
        if result.ok:
            print(f"{path.name}: OK (integrity check passed, {len(result.tables)} tables match the manifest)")
            return 0
        for problem in result.problems:
            print(f"  problem: {problem}", file=sys.stderr)
        print(f"{path.name}: NOT usable", file=sys.stderr)
        return 1
    try:
        with RunLock(settings.user_data_dir).acquire("bsmart restore"):
            done = restore_backup(settings, path)
    except LockedError as exc:
        print(f"refused: {exc}; stop the main job first (a restore under a running engine would be overwritten)",
              file=sys.stderr)
        return 1
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored {path.name} into {done.database}")
    if done.database_aside:
        print(f"  the database it replaced is kept at {done.database_aside}")
    if done.models_aside:
        print(f"  the models it replaced are kept at {done.models_aside}")
    if done.config_copy:
        print(f"  the backup's config is at {done.config_copy} (not copied over your current config)")
    print("  at the next start the engine compares its ledger with the exchange and re-places missing stops")
    return 0
