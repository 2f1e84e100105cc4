"""The process the kill drill kills: the main job (``bot.main_job.run_main_job``, what ``bsmart run`` runs) against
a ``bsmart sim`` in another process, acting as a person would, printing markers the drill kills on.

    python -m tests.drills.kill_child --config C --kind random|confirm|fill_stop|flatten|none [--check] [--seed N]

Lines on stdout: ``READY``; ``CHECK {json}`` (with --check: 5 s after ready, the ledger check and the ledger's
counts); ``ACT <what>`` right before each service call (the moment a confirm press lands); ``HOLD`` when an entry
has filled and its stop is about to go out (``fill_stop``: held there for 3 s); ``FLATCLOSE`` when a flatten is
about to send its closes (``flatten``). ``none``: stop cleanly after the check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
from pathlib import Path

from tests.drills.common import ADMIN, ledger_counts, mismatch_kinds, trades

PAIRS = ["BTC", "ETH", "SOL"]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


HOLD = {"on": True}


def install_hooks(kind: str, rng: random.Random) -> None:
    if kind in ("fill_stop", "reenter"):
        from trader.live.desk import OrderDesk
        original = OrderDesk._protect
        HOLD["on"] = kind == "fill_stop"

        async def held(self, entry):  # noqa: ANN001
            if HOLD["on"] and not entry.protected and entry.children:
                say(f"HOLD {entry.pair}")
                await asyncio.sleep(3.0)
            return await original(self, entry)

        OrderDesk._protect = held
    elif kind == "flatten":
        import trader.service.flatten as flatten_mod
        original_close = flatten_mod._close

        async def close(client, run, seq, rnd, position):  # noqa: ANN001
            say(f"FLATCLOSE {position.pair}")
            await asyncio.sleep(rng.uniform(0, 0.2))
            return await original_close(client, run, seq, rnd, position)

        flatten_mod._close = close


async def check(runtime) -> dict:
    report = await runtime.proxy.check_ledger()
    positions = await runtime.proxy.positions()
    rows = trades(runtime)
    out = {"ok": report.ok, "summary": report.summary(), "kinds": mismatch_kinds(report),
           "positions": len(positions), **ledger_counts(rows, not positions)}
    return out


async def act(runtime, kind: str, rng: random.Random) -> None:
    """Forced entries, exits and flattens at a person's pace, until the drill kills us."""
    if kind == "reenter":
        # One round trip on SOL, then a second entry on SOL held between its fill and its stop (the kill goes there).
        say("ACT enter SOL long")
        await runtime.proxy.force_enter(ADMIN, "SOL", "long")
        await asyncio.sleep(1.0)
        for _ in range(60):  # a forced exit waits for a live bar (refused before it: reported by the drill)
            say("ACT exit SOL")
            try:
                await runtime.proxy.force_exit(ADMIN, "SOL")
                break
            except Exception as exc:  # noqa: BLE001
                say(f"REFUSED {exc}")
                await asyncio.sleep(0.5)
        while await runtime.proxy.positions():
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        HOLD["on"] = True
        say("ACT enter SOL short")
        await runtime.proxy.force_enter(ADMIN, "SOL", "short")
        await asyncio.sleep(60)
        return
    entered = 0
    while True:
        held = {p.pair.split("/")[0] for p in await runtime.proxy.positions()}
        free = [p for p in PAIRS if p not in held]
        roll = rng.random()
        try:
            if kind == "flatten" and (entered >= rng.randint(1, 3) or not free):
                say("ACT flatten")
                await runtime.proxy.flatten(ADMIN)
                entered = 0
            elif free and (kind in ("fill_stop", "flatten") or roll < 0.6 or not held):
                pair, side = rng.choice(free), rng.choice(("long", "short"))
                say(f"ACT enter {pair} {side}")
                await runtime.proxy.force_enter(ADMIN, pair, side)
                entered += 1
            elif held and roll < 0.85:
                pair = rng.choice(sorted(held))
                say(f"ACT exit {pair}")
                await runtime.proxy.force_exit(ADMIN, pair)
            else:
                say("ACT flatten")
                await runtime.proxy.flatten(ADMIN)
        except Exception as exc:  # noqa: BLE001 - refusals (paused after a flatten, ...) are a person's daily life
            say(f"REFUSED {exc}")
            if "paused" in str(exc) or "blocked" in str(exc):
                await runtime.proxy.resume(ADMIN)
        await asyncio.sleep(rng.uniform(0.1, 0.8))


async def main(args: argparse.Namespace) -> int:
    from bot.main_job import run_main_job
    from trader.config.loader import load_settings

    rng = random.Random(args.seed)
    install_hooks(args.kind, rng)
    settings = load_settings(Path(args.config), environ={})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_ready(runtime, info) -> None:
        async def go() -> None:
            say("READY")
            try:
                if runtime.service.paused:  # a flatten before the kill paused entries; a person resumes
                    await runtime.proxy.resume(ADMIN)
                if args.check:
                    await asyncio.sleep(5.0)
                    say("CHECK " + json.dumps(await check(runtime), default=str))
                if args.kind == "none":
                    stop.set()
                    return
                await act(runtime, args.kind, rng)
            except Exception as exc:  # noqa: BLE001
                say(f"ERROR {exc!r}")
                stop.set()

        asyncio.ensure_future(go())

    return await run_main_job(settings, stop, on_ready=on_ready)  # bsmart run's heartbeat


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--kind", default="random")
    p.add_argument("--check", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(p.parse_args())))
