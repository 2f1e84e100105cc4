"""``bsmart download``: fill the candle store from the exchange (or the simulator), incrementally."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path

from bot.commands.common import add_config_argument, settings_or_exit
from trader.config.pairs import normalize_pair
from trader.config.schema import Settings
from trader.data.download import download_candles, download_funding, download_long_short_ratio, download_rules
from trader.data.ratio import RATIO_PERIODS
from trader.data.timeframes import timeframe_ms
from trader.data.timerange import TimeRange, last_days, parse_timerange
from trader.exchange.errors import ExchangeError
from trader.exchange.factory import client_from_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("download", help="download candles, mark prices and funding rates to Parquet")
    add_config_argument(parser)
    parser.add_argument("--pairs", required=True, help="comma-separated, e.g. BTC,ETH/USDT:USDT")
    parser.add_argument("--timeframes", default="1m", help="comma-separated, e.g. 1m,5m,1h (default 1m)")
    span = parser.add_mutually_exclusive_group(required=True)
    span.add_argument("--days", type=int, help="the last N days")
    span.add_argument("--timerange", help="YYYYMMDD-YYYYMMDD (UTC, end exclusive)")
    parser.add_argument("--funding", action="store_true", help="also funding rates")
    parser.add_argument("--mark", action="store_true", help="also mark-price candles")
    parser.add_argument("--ratio", nargs="?", const="5m", choices=RATIO_PERIODS, metavar="PERIOD",
                        help="also Binance's global long/short account ratio (default period 5m; Binance keeps 30 days)")
    parser.add_argument("--datadir", help="store directory (default <user_data>/data/binance/futures)")
    parser.set_defaults(func=_run)


def _bar(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r{label:<32} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    try:
        pairs = [normalize_pair(p) for p in args.pairs.split(",") if p.strip()]
        timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
        for tf in timeframes:
            timeframe_ms(tf)
        span = last_days(args.days) if args.days is not None else parse_timerange(args.timerange)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if span.start_ms is None:
        print("error: the time range needs a start date", file=sys.stderr)
        return 2
    data_dir = Path(args.datadir) if args.datadir else settings.data_dir
    return asyncio.run(_download(settings, pairs, timeframes, span, data_dir, args.funding, args.mark,
                                 getattr(args, "ratio", None)))


async def _download(
    settings: Settings, pairs: list[str], timeframes: list[str], span: TimeRange, data_dir: Path, funding: bool, mark: bool,
    ratio: str | None = None,
) -> int:
    end_ms = span.end_ms or int(time.time() * 1000)
    client = client_from_settings(settings, with_keys=False)
    try:
        for pair in pairs:
            for tf in timeframes:
                jobs = [False, True] if mark else [False]
                for is_mark in jobs:
                    result = await download_candles(client, data_dir, pair, tf, span.start_ms, end_ms,
                                                    mark=is_mark, progress=_bar)
                    print(f"{result.label}: {result.added} new, {result.total} stored in {result.path}")
                    for gap in result.gaps:
                        print(f"  gap: {gap.missing} candles missing from {_iso(gap.start_ms)} to {_iso(gap.end_ms)}")
            if funding:
                result = await download_funding(client, data_dir, pair, span.start_ms, end_ms, progress=_bar)
                print(f"{result.label}: {result.added} new, {result.total} stored in {result.path}")
            if ratio:
                result = await download_long_short_ratio(client, data_dir, pair, span.start_ms, end_ms, period=ratio,
                                                         progress=_bar)
                print(f"{result.label}: {result.added} new, {result.total} stored in {result.path}")
        # The exchange's rules of the day (filters; brackets need keys) beside the candles: a backtest uses the
        # snapshot nearest its range.
        keyed = client_from_settings(settings) if (settings.exchange.key and settings.exchange.secret) else None
        try:
            rules = await download_rules(client, data_dir, pairs, keyed)
        finally:
            if keyed is not None:
                await keyed.close()
        for path in rules.paths:
            print(f"exchange rules: {path}")
        for note in rules.notes:
            print(f"  {note}")
    except ExchangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
