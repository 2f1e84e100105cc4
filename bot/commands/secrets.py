"""``bsmart secrets set|list|delete``: the encrypted store for API keys and the bot token."""

from __future__ import annotations

import argparse
import getpass
import sys

from bot.commands.common import add_config_argument, settings_or_exit
from trader.security.secret_store import KNOWN_NAMES, SecretStore, SecretStoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("secrets", help="keep API keys and the bot token encrypted at rest")
    actions = parser.add_subparsers(dest="secrets_action", metavar="ACTION", required=True)
    set_ = actions.add_parser("set", help="store a secret (prompted without echo)")
    set_.add_argument("name", help=f"secret name, e.g. {', '.join(KNOWN_NAMES)}")
    set_.add_argument("--stdin", action="store_true", help="read the value from standard input (for scripts)")
    list_ = actions.add_parser("list", help="list stored secret names (never values)")
    delete = actions.add_parser("delete", help="remove a secret")
    delete.add_argument("name")
    for sub, func in ((set_, _set), (list_, _list), (delete, _delete)):
        add_config_argument(sub)
        sub.set_defaults(func=func)


def _store(args: argparse.Namespace) -> SecretStore:
    return SecretStore(settings_or_exit(args).user_data_dir)


def _set(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.stdin or not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = getpass.getpass(f"{args.name}: ")
        if value != getpass.getpass("again: "):
            print("the two entries differ; nothing stored", file=sys.stderr)
            return 1
    if args.name not in KNOWN_NAMES:
        print(f"note: {args.name!r} is not read by the configuration ({', '.join(KNOWN_NAMES)} are)", file=sys.stderr)
    try:
        store.set(args.name, value)
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stored {args.name} in {store.path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        names = _store(args).names()
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in names:
        print(name)
    return 0


def _delete(args: argparse.Namespace) -> int:
    try:
        removed = _store(args).delete(args.name)
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"no secret named {args.name!r}", file=sys.stderr)
        return 1
    print(f"deleted {args.name}")
    return 0
