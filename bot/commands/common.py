"""What several subcommands share: the --config option and turning configuration problems into exit code 2."""

from __future__ import annotations

import argparse
import sys

from trader.config.loader import ConfigError, load_settings
from trader.config.schema import Settings
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
