"""What several subcommands share: the --config option and turning configuration problems into exit code 2."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from trader.config.loader import ConfigError, load_settings
from trader.config.pairs import normalize_pair
from trader.config.schema import Settings
from trader.data.store import bundled_data_dir, candle_path
from trader.data.timeframes import timeframe_ms
from trader.data.timerange import parse_timerange
from trader.security.secret_store import lookup

EXIT_CONFIG = 2


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="JSON config file (default: $BSMART_CONFIG, else the embedded defaults)",
    )


def settings_or_exit(args: argparse.Namespace) -> Settings:
    """Load settings, or print one line per problem to stderr and exit with code 2. Nothing starts."""
    try:
        return load_settings(getattr(args, "config", None), secret_lookup=lookup)
    except ConfigError as exc:
        print("configuration error:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


@dataclass(frozen=True)
class RunArgs:
    """What `bsmart backtest` and `bsmart hyperopt` share: pairs, bars, range, leverage and the candle store."""

    pairs: list[str]
    timeframe: str
    start_ms: int | None
    end_ms: int | None
    leverage: int
    data_dir: Path


def run_args(args: argparse.Namespace, settings: Settings) -> RunArgs:
    """Read --pairs/--timeframe/--timerange/--leverage/--datadir; ValueError names the first bad one."""
    pairs = ([normalize_pair(p) for p in args.pairs.split(",") if p.strip()] if args.pairs
             else list(settings.pair_whitelist))
    timeframe_ms(args.timeframe)
    span = parse_timerange(args.timerange) if args.timerange else None
    start_ms, end_ms = (span.start_ms, span.end_ms) if span else (None, None)
    leverage = args.leverage if args.leverage is not None else settings.leverage
    if not 1 <= leverage <= settings.max_leverage:
        raise ValueError(f"leverage {leverage} is outside 1..{settings.max_leverage} (max_leverage)")
    if args.datadir:
        data_dir = Path(args.datadir)
    elif all(candle_path(settings.data_dir, p, "1m").exists() for p in pairs):
        data_dir = settings.data_dir
    else:  # the user's store lacks these pairs: the sample data shipped with the package
        data_dir = bundled_data_dir()
    return RunArgs(pairs, args.timeframe, start_ms, end_ms, leverage, data_dir)
