"""Issue 11's standing drills at full size, printing the counts per drill (tests/drills runs them at CI sizes).

    .venv/bin/python bench/drills.py                      # everything, full size, speed 1 and 60 where it applies
    .venv/bin/python bench/drills.py --fuzz 2000 --flatten 20 --kill 30 --faults 3 --speed 60 --seed 1
    .venv/bin/python bench/drills.py --only flatten,kill --flatten 5 --kill 8

- fuzz N: N+ fuzzed user-data updates (duplicated, reordered, stale, junk) fed to OrderDesk.on_orders;
- flatten N: N rounds for each of 1..5 positions (long and short mixed), fresh database and simulator each round;
- kill N: N kill -9 of the main job (random moments, right after confirm presses, between an entry's fill and its
  stop, during a flatten) against ``bsmart sim`` in another process, each followed by a restart and the checks
  5 s later;
- faults H: H simulated hours of 503/−1001 (5 %), 429 (2 %), −1007 after execution (1 %), 2 s latency spikes and
  dropped websockets, then the tier's return to normal within its hold time and the invariants.

``--speed`` 1 (the real-time clock), 60 (accelerated) or ``both`` (default). The faults drill takes H·3600/speed
seconds of wall time, so with ``both`` it runs at 60 only; ``--speed 1 --faults 0.1`` runs it at the real clock. Every count named like a failure must be 0; the
exit code is 1 when one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.drills.faults import run_faults  # noqa: E402
from tests.drills.flatten import run_flatten  # noqa: E402
from tests.drills.fuzz import run_fuzz  # noqa: E402
from tests.drills.kill import run_kill  # noqa: E402

# Counts that must be zero (prefix match for the mismatch_* families).
MUST_BE_ZERO = (
    "crashes", "mirror_mismatches", "double_counts", "ledger_fill_mismatches", "duplicate_fill_keys",
    "duplicate_orders", "desk_errors", "entry_errors", "round_crashes", "positions_without_stop",
    "flatten_not_flat", "flatten_ledger_not_ok", "exchange_positions_left", "positions_reported_left",
    "trades_open_when_flat", "invented_exit_prices", "duplicate_client_ids", "duplicate_entries", "extra_orders",
    "ledger_mismatches", "mismatch_", "final_mismatch_", "ledger_checks_not_ok", "restart_failures",
    "check_missing", "tier_not_normal_within_hold", "final_flatten_not_flat", "clean_exit_failures",
)


def failures(counts: dict) -> dict:
    return {k: v for k, v in counts.items() if isinstance(v, (int, float)) and v
            and any(k == z or (z.endswith("_") and k.startswith(z)) or k.startswith(z + "_") for z in MUST_BE_ZERO)
            and k != "mismatch_exit_unknown"}


def show(name: str, counts: dict) -> bool:
    problems = counts.pop("problems", None) or counts.pop("failures", None) or []
    counts.pop("desk_error_samples", None)
    bad = failures(counts)
    print(f"\n== {name} ==  {'OK' if not bad else 'FAILED: ' + ', '.join(f'{k}={v}' for k, v in bad.items())}")
    width = max(len(k) for k in counts) if counts else 0
    for k, v in counts.items():
        print(f"  {k:<{width}}  {v}")
    for p in problems[:10]:
        print(f"  ! {p}")
    sys.stdout.flush()
    return not bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="fuzz,flatten,kill,faults", help="comma-separated drills to run")
    ap.add_argument("--fuzz", type=int, default=2000, help="fuzzed updates (default 2000)")
    ap.add_argument("--flatten", type=int, default=20, help="rounds per position count 1..5 (default 20)")
    ap.add_argument("--kill", type=int, default=30, help="kill -9 count (default 30)")
    ap.add_argument("--faults", type=float, default=3.0, help="simulated hours of faults (default 3)")
    ap.add_argument("--hold", type=int, default=60, help="latency tier hold time in seconds (default 60, the config's)")
    ap.add_argument("--speed", default="both", help="1, 60 or both (default both)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="keep databases and logs here (default: temporary)")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per round")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the drills count; the job's own warnings would bury the figures
    speeds = [1.0, 60.0] if args.speed == "both" else [float(args.speed)]
    only = {x.strip() for x in args.only.split(",")}
    log = print if args.verbose else None
    ok = True
    started = time.monotonic()

    def sub(name: str) -> Path | None:
        if args.workdir is None:
            return None
        path = args.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    if "fuzz" in only:
        ok &= show(f"fuzz {args.fuzz} updates", asyncio.run(run_fuzz(args.fuzz, seed=args.seed, workdir=sub("fuzz"))))
    for speed in speeds:
        if "flatten" in only:
            ok &= show(f"flatten 1-5 positions x {args.flatten}, speed {speed:g}", asyncio.run(
                run_flatten(args.flatten, speed, seed=args.seed, workdir=sub(f"flatten-{speed:g}"), log=log)))
        if "kill" in only:
            ok &= show(f"kill -9 x {args.kill}, speed {speed:g}",
                       run_kill(args.kill, speed, seed=args.seed, workdir=sub(f"kill-{speed:g}"), log=log))
        if "faults" in only and (args.speed != "both" or speed != 1.0):  # hours at speed 1 only when asked
            ok &= show(f"faults {args.faults:g} simulated h, speed {speed:g}", asyncio.run(
                run_faults(args.faults, speed, seed=args.seed, hold_s=args.hold, workdir=sub(f"faults-{speed:g}"))))
    print(f"\n{'all drills OK' if ok else 'DRILLS FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
