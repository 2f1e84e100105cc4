"""``bsmart reconcile [--fix]``: the ledger checked against the exchange (positions, fills, wallet), and with
``--fix`` brought in step from the account's own fills first (trades the exchange closed are closed at its prices,
or marked exit-unknown when no fill explains them; never at an invented price)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.commands.common import add_config_argument, settings_or_exit
from trader.bootstrap import open_core
from trader.config.schema import Settings
from trader.exchange.errors import ExchangeError
from trader.exchange.factory import client_from_settings
from trader.service.ledger_sync import sync_ledger
from trader.service.reconcile import ReconcileReport, check_ledger


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reconcile", help="check the trade ledger against the exchange (--fix: bring it "
                                                     "in step from the exchange's fills first)")
    add_config_argument(parser)
    parser.add_argument("--fix", action="store_true",
                        help="close trades the exchange closed, from its fills (stop `bsmart run` first)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    if settings.dry_run and settings.exchange.api_url is None:
        print("error: this configuration trades the simulator embedded in `bsmart run`, which only exists while it "
              "runs; use /reconcile in Telegram, or point exchange.api_url at a running `bsmart sim`",
              file=sys.stderr)
        return 2
    return asyncio.run(_reconcile(settings, args.fix))


async def _reconcile(settings: Settings, fix: bool) -> int:
    core = open_core(settings, file_logging=False)
    client = client_from_settings(settings)
    try:
        pairs = list(core.runtime_state.get("pair_whitelist", settings.pair_whitelist))
        leverage = int(core.runtime_state.get("leverage", settings.leverage))
        await client.ccxt.load_markets()
        if fix:
            unexplained = await sync_ledger(client, core.sessions, pairs=pairs, leverage=leverage,
                                            dry_run=settings.dry_run)
            for pair in unexplained:
                print(f"fixed: {pair}: closed with the exit unknown (no fill explains the difference)")
        baseline = core.runtime_state.get("wallet_baseline")
        report = await check_ledger(client, core.sessions, baseline=baseline)
    except ExchangeError as exc:
        print(f"error: the exchange could not be read: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
        core.close()
    _print(report)
    return 0 if report.ok else 3


def _print(report: ReconcileReport) -> None:
    print(f"checked {report.checked_at:%Y-%m-%d %H:%M:%S}Z (exchange clock), closed trades since "
          f"{report.since:%Y-%m-%d %H:%M}Z")
    print(f"open trades {report.open_trades}, exchange positions {report.positions}, closed trades checked "
          f"{report.closed_checked}, fills compared {report.fills_checked}, exits unknown {report.exits_unknown}")
    if report.ledger_change is not None:
        print(f"ledger Σ realised − fees + funding {report.ledger_change:.4f} USDT; exchange statement "
              f"{report.income:.4f} USDT" + (f"; wallet change {report.wallet_change:.4f} USDT"
                                              if report.wallet_change is not None else ""))
    if report.ok:
        print("OK: the ledger matches the exchange")
        return
    for m in report.mismatches:
        print(f"MISMATCH [{m.kind}] {m.detail}")
    for e in report.errors:
        print(f"ERROR {e}")
