"""``bsmart sim``: run the local Binance USDⓈ-M exchange simulator (replayed candles, ccxt-compatible)."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

# trader.sim.config's DEFAULT_API_KEY / DEFAULT_API_SECRET, spelt out so `bsmart --help` need not import the
# simulator (tests/bot/test_sim_data.py keeps them equal).
SIM_API_KEY = "simkey" + "0" * 58
SIM_API_SECRET = "simsecret" + "0" * 55


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim", help="run the local Binance futures simulator (REST + websocket on 127.0.0.1)",
        # The first line on stdout stays "binance simulator on ..." (drills and benches read it): the key pair is here.
        epilog=f"Signed requests are accepted with API key {SIM_API_KEY} and API secret {SIM_API_SECRET}.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 picks a free one)")
    p.add_argument("--data", type=Path, default=None,
                   help="candle directory: a data folder with a futures/ subfolder (../shared/data) or the futures "
                        "folder itself (<PAIR>-<tf>-futures.parquet files); default: the bundled sample")
    p.add_argument("--pairs", default="BTC/USDT:USDT,ETH/USDT:USDT,SOL/USDT:USDT",
                   help="comma-separated pairs to list (default BTC, ETH, SOL)")
    p.add_argument("--start", default=None, help="replay start, UTC date or ISO time (default: a day into the data)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="clock speed: 1 = real time, N = N× accelerated, 0 = stepped via /_sim/clock/step")
    p.add_argument("--balance", default="10000", help="starting USDT wallet (default 10000)")
    p.add_argument("--state", type=Path, default=None, help="persist the account here across restarts")
    p.set_defaults(func=_run)


def data_dir(path: Path) -> Path:
    """The folder holding ``<PAIR>-<tf>-futures.*`` files: ``path`` itself, or its ``futures/`` (or
    ``binance/futures/``) subfolder when the files are there. ValueError names what is missing."""
    path = path.expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {path}: no such directory")
    for candidate in (path, path / "futures", path / "binance" / "futures"):
        if candidate.is_dir() and any(candidate.glob("*-futures.*")):
            return candidate
    raise ValueError(f"--data {path}: no <PAIR>-<timeframe>-futures candle files here or in its futures/ subfolder")


def _run(args: argparse.Namespace) -> int:
    from trader.config.pairs import normalize_pair
    from trader.sim.config import SimConfig, parse_start
    from trader.sim.server import run

    try:
        pairs = [normalize_pair(x) for x in args.pairs.split(",") if x.strip()]
        start = parse_start(args.start) if args.start else None
        balance = Decimal(args.balance)
        data = data_dir(args.data) if args.data is not None else None
    except (ValueError, InvalidOperation) as e:
        print(f"bsmart sim: {e}", file=sys.stderr)
        return 2
    if args.speed < 0:
        print("bsmart sim: --speed must be >= 0", file=sys.stderr)
        return 2
    mode = "stepped" if args.speed == 0 else "real" if args.speed == 1 else "accelerated"
    cfg = SimConfig(host=args.host, port=args.port, data_dir=data, pairs=pairs, start_ms=start,
                    clock_mode=mode, speed=args.speed or 1.0, balance=balance, state_file=args.state)
    try:
        return run(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"bsmart sim: {e}", file=sys.stderr)
        return 1
