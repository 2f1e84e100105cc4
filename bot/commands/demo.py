"""``bsmart demo``: simulator, engine, bot and a terminal chat, with no configuration at all."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from bot.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the whole product offline: simulator, engine, bot, terminal chat")
    parser.add_argument("--language", choices=["en", "zh_CN"], default="en")
    parser.add_argument("--dir", default="user_data/demo", help="where the demo keeps its database and logs")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(Path(args.dir), language=args.language, stop=stop)

    return asyncio.run(main())
