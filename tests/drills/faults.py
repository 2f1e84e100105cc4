"""Fault matrix drill (issue 11): the main job trading through simulated hours of exchange faults — 5 % of requests
503 / −1001, 2 % 429, 1 % −1007 whose order *was* executed, 2 s latency spikes, dropped websockets — while a person
enters, exits and flattens; then the faults end and:

- the latency tier (the guard's and the shared monitor's) is back to normal within its hold time;
- every exchange position has a STOP_MARKET; the ledger agrees with the exchange (check_ledger), no trade left
  open when flat after a final flatten, no invented exit price; no duplicate orders (client ids, entries).

The embedded simulator (in the job's process) takes the faults through its admin calls."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.drills.common import (
    ADMIN,
    add,
    drill_config,
    ledger_counts,
    mismatch_kinds,
    on_host,
    order_counts,
    run_once,
    settings_for,
    sim_orders,
    trades,
)
from trader.events import LatencyTierChanged, RiskAction
from trader.exchange.latency import LatencyTier

PAIRS3 = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
# Shares of all /fapi requests: 2.5 % 503 + 2.5 % −1001 = 5 %, 2 % 429, 1 % −1007 after execution (orders only).
ERROR_KINDS = ["503"] * 5 + ["-1001"] * 5 + ["429"] * 4 + ["-1007"] * 2
ERROR_SHARE = 0.08
BASE_FAULTS = {"error_share": ERROR_SHARE, "error_kinds": ERROR_KINDS, "ws_drop_every_s": 20.0}
NO_FAULTS = {"error_share": 0.0, "latency_ms": 0.0, "jitter_ms": 0.0, "ws_drop_every_s": 0.0}


def unprotected(state: dict[str, Any]) -> int:
    stops = {(a["symbol"], a["side"]) for a in state["open_algo_orders"] if a["orderType"] == "STOP_MARKET"}
    return sum(1 for p in state["positions"]
               if (p["symbol"], "SELL" if float(p["amount"]) > 0 else "BUY") not in stops)


async def fault_run(root: Path, hours: float, speed: float, hold_s: int, rng: random.Random) -> dict[str, Any]:
    settings = settings_for(root, drill_config(root, speed, pairs=PAIRS3,
                                               risk={"latency": {"hold_seconds": hold_s}}))
    wall = hours * 3600 / speed
    counts: Counter = Counter()
    problems: list[str] = []

    async def act(runtime) -> dict[str, Any]:
        sim = runtime.sim
        tiers: list[str] = []
        def watch(e) -> None:  # noqa: ANN001
            if isinstance(e, LatencyTierChanged):
                tiers.append(e.new)
            elif isinstance(e, RiskAction) and e.action in ("emergency_flatten", "emergency_block"):
                counts["emergency_actions"] += 1

        runtime.bus.subscribe(watch)
        # First half without the 429s (each one pauses the client up to a minute, as Binance's Retry-After
        # demands, which would hide the other faults), second half with the whole matrix.
        no429 = [k for k in ERROR_KINDS if k != "429"]
        await on_host(runtime, lambda: sim.set_faults({**BASE_FAULTS, "error_kinds": no429,
                                                       "error_share": ERROR_SHARE * len(no429) / len(ERROR_KINDS),
                                                       "seed": rng.randrange(10**6)}))
        end = time.monotonic() + wall
        half = time.monotonic() + wall / 2
        next_spike = time.monotonic() + rng.uniform(3, 10)
        spike_until = 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if half and now >= half:
                await on_host(runtime, lambda: sim.set_faults(BASE_FAULTS))
                half = 0.0
            if spike_until and now >= spike_until:
                await on_host(runtime, lambda: sim.set_faults({"latency_ms": 0.0}))
                spike_until = 0.0
            elif not spike_until and now >= next_spike:
                await on_host(runtime, lambda: sim.set_faults({"latency_ms": 2000.0}))
                counts["latency_spikes"] += 1
                spike_until = now + rng.uniform(2.0, 4.0)
                next_spike = spike_until + rng.uniform(10, 30)
            if rng.random() < 0.05:
                await on_host(runtime, lambda: sim.hub.drop_all(True))
                counts["ws_drops_forced"] += 1
            try:
                held = {p.pair for p in await runtime.proxy.positions()}
                free = [p for p in PAIRS3 if p not in held]
                roll = rng.random()
                if runtime.service.paused and roll < 0.5:
                    await runtime.proxy.resume(ADMIN)
                    counts["resumes"] += 1
                elif free and roll < 0.6:
                    counts["entries_tried"] += 1
                    await runtime.proxy.force_enter(ADMIN, rng.choice(free).split("/")[0], rng.choice(("long", "short")))
                    counts["entries_ok"] += 1
                elif held and roll < 0.9:
                    counts["exits_tried"] += 1
                    await runtime.proxy.force_exit(ADMIN, rng.choice(sorted(held)).split("/")[0])
                    counts["exits_ok"] += 1
                elif roll < 0.93:
                    counts["flattens"] += 1
                    report = await runtime.proxy.flatten(ADMIN)
                    counts["flattens_not_flat"] += 0 if report.flat else 1
            except Exception as exc:  # noqa: BLE001 - refusals and exchange errors are what faults produce
                text = str(exc)
                if "rate limited" in text:
                    counts["actions_refused_rate_limited"] += 1
                elif "paused" in text or "blocked" in text:
                    counts["actions_refused_paused"] += 1
                else:
                    counts["action_errors_other"] += 1
                    if len(problems) < 5:
                        problems.append(f"action: {text}"[:300])
            await asyncio.sleep(rng.uniform(0.5, 2.0))
        # Faults end.
        await on_host(runtime, lambda: sim.set_faults(NO_FAULTS))
        off = time.monotonic()
        monitor = runtime.service.client.latency
        back = None
        while time.monotonic() - off < hold_s + 30:
            if monitor.tier is LatencyTier.NORMAL and runtime.guard.tier is LatencyTier.NORMAL:
                back = time.monotonic() - off
                break
            await asyncio.sleep(0.2)
        counts["tier_seconds_to_normal"] = round(back, 1) if back is not None else -1
        counts["tier_not_normal_within_hold"] = 0 if back is not None and back <= hold_s + 2 else 1
        counts["tier_changes"] = len(tiers)
        counts["tier_emergency_entered"] = tiers.count("emergency")
        # Settle, then the invariants with the account as the faults left it.
        await asyncio.sleep(3.0)
        state = await on_host(runtime, sim.state)
        counts["positions_at_end"] = len(state["positions"])
        counts["positions_without_stop"] = unprotected(state)
        # A 429 before the end pauses the client up to a minute (Retry-After): the check waits for the exchange.
        waited = time.monotonic()
        while True:
            check = await runtime.proxy.check_ledger()
            if not check.errors or time.monotonic() - waited > 90:
                break
            await asyncio.sleep(2.0)
        counts["check_waited_for_rate_limit_s"] = round(time.monotonic() - waited, 1)
        for kind, v in mismatch_kinds(check).items():
            counts[f"mismatch_{kind}"] += v
        if not check.ok:
            problems.append("after faults: " + check.summary()[:400])
        # A final flatten: flat means no trade left open.
        report = await runtime.proxy.flatten(ADMIN)
        await asyncio.sleep(1.0)
        final = await runtime.proxy.check_ledger()
        for kind, v in mismatch_kinds(final).items():
            counts[f"final_mismatch_{kind}"] += v
        if not final.ok:
            problems.append("after the final flatten: " + final.summary()[:400])
        orders, algos, held = await on_host(runtime, lambda: sim_orders(sim))
        counts.update(ledger_counts(trades(runtime), not held))
        counts["final_flatten_not_flat"] = 0 if report.flat else 1
        counts.update(order_counts(orders, algos))
        counts["runs"] = 1
        return dict(counts)

    out = await run_once(settings, act, timeout=wall + hold_s + 300)
    out["problems"] = problems
    return out


async def run_faults(hours: float = 3.0, speed: float = 60.0, seed: int = 0, hold_s: int = 60,
                     workdir: Path | None = None, log=None) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="drill-faults-")
        workdir = Path(tmp.name)
    started = time.monotonic()
    try:
        counts = await fault_run(Path(workdir) / f"s{speed:g}", hours, speed, hold_s, rng)
    finally:
        if tmp is not None:
            tmp.cleanup()
    problems = counts.pop("problems", [])
    total: Counter = Counter()
    add(total, counts)
    out: dict[str, Any] = dict(total)
    out["simulated_hours"] = hours
    out["seconds"] = round(time.monotonic() - started, 1)
    out["problems"] = problems[:20]
    if log is not None:
        log(f"faults speed {speed:g}: {out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys
    print(json.dumps(asyncio.run(run_faults(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5,
                                            float(sys.argv[2]) if len(sys.argv) > 2 else 60.0,
                                            hold_s=int(sys.argv[3]) if len(sys.argv) > 3 else 10)),
                     indent=1, default=str))
