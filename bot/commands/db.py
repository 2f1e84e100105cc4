"""``bsmart db upgrade|current``."""

from __future__ import annotations

import argparse

from bot.commands.common import add_config_argument, settings_or_exit
from trader.persistence.database import make_engine
from trader.persistence.migrate import current_revision, head_revision, upgrade


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database schema migrations")
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="apply pending migrations (also done at every start)")
    add_config_argument(up)
    up.set_defaults(func=_upgrade)
    cur = actions.add_parser("current", help="show the schema revision of the database")
    add_config_argument(cur)
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    engine = make_engine(settings.resolved_db_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    print(f"database {engine.url.render_as_string(hide_password=True)}: {before or 'empty'} -> {after}")
    return 0


def _current(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    engine = make_engine(settings.resolved_db_url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else f"behind (head is {head}; run `bsmart db upgrade`)"
    print(f"{revision or 'empty'}: {state}")
    return 0
