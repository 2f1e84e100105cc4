"""Kill drill (issue 11): ``kill -9`` of the main job at random moments, right after confirm presses, between an
entry's fill and its stop, and during a flatten; then a restart, and 5 s later every exchange position must have a
STOP_MARKET and the ledger must agree with the exchange.

The exchange is ``bsmart sim`` in its own process (it must outlive the killed job, as Binance does); the main job
runs in a child process (tests/drills/kill_child.py) against it, on one database for the whole drill, so each
restart recovers from everything the kills before left behind. Duplicate orders are read at the end from the
simulator's REST API (every order and conditional of the account, by client id)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.drills.common import add, is_entry, order_counts
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

REPO = Path(__file__).resolve().parents[2]
KINDS = ("random", "confirm", "fill_stop", "flatten")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class Lines:
    """A child's stdout, line by line, readable with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.q.put(line.rstrip("\n"))
            self.q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.seen.append(line)
            if line.startswith(prefix):
                return line


@contextmanager
def sim_process(speed: float, workdir: Path) -> Iterator[str]:
    """``bsmart sim`` on a free port; yields its base URL."""
    log = open(workdir / "sim.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "sim", "--port", "0", "--speed", f"{speed:g}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        banner, m = "", None
        for _ in range(6):  # the banner line follows the key pair the simulator accepts
            line = proc.stdout.readline()
            banner += line
            m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if m or not line:
                break
        if not m:
            raise RuntimeError(f"bsmart sim did not start: {banner!r}")
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def admin(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


def signed_get(base: str, path: str, params: dict[str, Any]) -> Any:
    q = urllib.parse.urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 10_000})
    sig = hmac.new(DEFAULT_API_SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{base}{path}?{q}&signature={sig}", headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


def unprotected(base: str) -> tuple[int, int]:
    """(positions, positions without a closing STOP_MARKET) on the exchange now."""
    state = admin(base, "/_sim/state")
    stops = {(a["symbol"], a["side"]) for a in state["open_algo_orders"] if a["orderType"] == "STOP_MARKET"}
    stops |= {(o["symbol"], o["side"]) for o in state["open_orders"] if o.get("type") == "STOP_MARKET"}
    missing = 0
    for p in state["positions"]:
        closing = "SELL" if float(p["amount"]) > 0 else "BUY"
        if (p["symbol"], closing) not in stops:
            missing += 1
    return len(state["positions"]), missing


def exchange_orders(base: str) -> dict[str, int]:
    orders: list[tuple[str, str, bool]] = []
    algos: list[str] = []
    for sym in SYMBOLS:
        rows_algo = signed_get(base, "/fapi/v1/allAlgoOrders", {"symbol": sym, "limit": 1000})
        triggered = {str(a.get("actualOrderId")) for a in rows_algo if a.get("actualOrderId")}
        algos += [a["clientAlgoId"] for a in rows_algo]
        rows = signed_get(base, "/fapi/v1/allOrders", {"symbol": sym, "limit": 1000})
        orders += [(o["clientOrderId"], sym, bool(o.get("reduceOnly"))) for o in rows
                   if str(o["orderId"]) not in triggered]
    return order_counts(orders, algos)


def child_config(root: Path, base: str) -> Path:
    cfg = {
        "exchange": {"name": "binance", "api_url": base, "ws_url": base.replace("http://", "ws://"),
                     "key": DEFAULT_API_KEY, "secret": DEFAULT_API_SECRET},
        "dry_run": True, "metrics": {"enabled": False}, "user_data_dir": str(root / "ud"), "log_level": "WARNING",
        "pair_whitelist": ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"], "max_open_trades": 3,
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def spawn(config: Path, kind: str, check: bool, seed: int, log: Path) -> tuple[subprocess.Popen, Lines]:
    args = [sys.executable, "-m", "tests.drills.kill_child", "--config", str(config), "--kind", kind,
            "--seed", str(seed)] + (["--check"] if check else [])
    env = {k: v for k, v in os.environ.items() if k != "BSMART_CONFIG"}
    proc = subprocess.Popen(args, cwd=config.parent, env={**env, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=open(log, "a"), text=True)  # noqa: SIM115
    return proc, Lines(proc)


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def run_kill(kills: int = 30, speed: float = 60.0, seed: int = 0, workdir: Path | None = None,
             log=None) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="drill-kill-")
        workdir = Path(tmp.name)
    workdir = Path(workdir)
    total: Counter = Counter()
    problems: list[str] = []
    started = time.monotonic()
    try:
        with sim_process(speed, workdir) as base:
            config = child_config(workdir / "job", base)
            stderr = workdir / "job.stderr"
            kind_prev = "none"
            for i in range(kills + 1):
                last = i == kills
                kind = "none" if last else KINDS[i % len(KINDS)]
                counts: Counter = Counter()
                child_seed = rng.randrange(10**6)
                started_ok = False
                for _attempt in range(4):
                    proc, lines = spawn(config, kind, check=i > 0, seed=child_seed, log=stderr)
                    if lines.wait_for("READY", 120) is not None:
                        started_ok = True
                        break
                    # A start refused (the exchange's request weight used up by the starts before): what a
                    # supervisor (docker's restart policy) would do, wait and start again; counted.
                    counts["restart_refused"] += 1
                    kill9(proc)
                    time.sleep(30)
                try:
                    if not started_ok:
                        counts["restart_failures"] += 1
                        problems.append(f"run {i}: no READY after 4 starts; last lines {lines.seen[-5:]}")
                        continue
                    ready = time.monotonic()
                    if i > 0:
                        counts["restarts"] += 1
                        time.sleep(max(0.0, ready + 5.0 - time.monotonic()))
                        held, missing = unprotected(base)
                        counts["positions_after_restart"] += held
                        counts["positions_without_stop_5s_after_restart"] += missing
                        line = lines.wait_for("CHECK ", 60)
                        if line is None:
                            counts["check_missing"] += 1
                            problems.append(f"run {i}: no CHECK; last lines {lines.seen[-5:]}")
                        else:
                            res = json.loads(line[len("CHECK "):])
                            for k in ("trades_open_when_flat", "invented_exit_prices"):
                                counts[k] += res[k]
                            counts["exits_unknown_seen"] = res["exits_unknown"]  # cumulative in the ledger
                            for k, v in res["kinds"].items():
                                counts[f"mismatch_{k}"] += v
                            if not res["ok"]:
                                counts["ledger_checks_not_ok"] += 1
                                problems.append(f"run {i} (after kill {kind_prev}): {res['summary'][:400]}")
                            if missing:
                                problems.append(f"run {i} (after kill {kind_prev}): {missing} of {held} positions "
                                                "without a stop 5 s after the restart")
                    if last:
                        counts["clean_exit_failures"] += 0 if proc.wait(60) == 0 else 1
                        continue
                    # Choose the moment.
                    if kind == "random":
                        time.sleep(rng.uniform(0.0, 4.0))
                    elif kind == "confirm":
                        if lines.wait_for("ACT ", 30) is None:
                            counts["marker_missed"] += 1
                        time.sleep(rng.uniform(0.0, 0.05))
                    elif kind == "fill_stop":
                        if lines.wait_for("HOLD", 30) is None:
                            counts["marker_missed"] += 1
                        else:
                            time.sleep(0.1)
                            if unprotected(base)[1]:
                                counts["killed_with_naked_position"] += 1
                    elif kind == "flatten":
                        if lines.wait_for("FLATCLOSE", 40) is None:
                            counts["marker_missed"] += 1
                        time.sleep(rng.uniform(0.0, 0.3))
                    kill9(proc)
                    counts["kills"] += 1
                    counts[f"kills_{kind}"] += 1
                finally:
                    if proc.poll() is None:
                        kill9(proc)
                    kind_prev = kind
                    add(total, counts)
                    if log is not None:
                        log(f"kill speed {speed:g} run {i}/{kills} ({kind}): "
                            f"{ {k: v for k, v in counts.items() if v} }")
            add(total, exchange_orders(base))
            total["positions_opened"] = sum(1 for _ in _entries(base))
    finally:
        if tmp is not None:
            tmp.cleanup()
    out: dict[str, Any] = dict(total)
    out["seconds"] = round(time.monotonic() - started, 1)
    out["problems"] = problems[:20]
    return out


def run_reenter_repro(speed: float = 60.0, workdir: Path | None = None) -> dict[str, Any]:
    """Deterministic: a closed round trip on SOL, a second SOL entry killed between its fill and its stop, restart;
    returns the restarted job's CHECK (the ledger check 5 s after the restart) and the exchange's stop state."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="drill-reenter-")
        workdir = Path(tmp.name)
    workdir = Path(workdir)
    try:
        with sim_process(speed, workdir) as base:
            config = child_config(workdir / "job", base)
            proc, lines = spawn(config, "reenter", False, 0, workdir / "job.stderr")
            try:
                held = lines.wait_for("HOLD", 120)
            finally:
                kill9(proc)
            if held is None:
                raise RuntimeError(f"no HOLD: {lines.seen[-5:]}")
            proc, lines = spawn(config, "none", True, 0, workdir / "job.stderr")
            try:
                line = lines.wait_for("CHECK ", 120)
                positions, missing = unprotected(base)
            finally:
                kill9(proc)
            if line is None:
                raise RuntimeError(f"no CHECK: {lines.seen[-5:]}")
            out = json.loads(line[len("CHECK "):])
            out.update(exchange_positions=positions, without_stop=missing)
            return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def _entries(base: str) -> Iterator[str]:
    for sym in SYMBOLS:
        for o in signed_get(base, "/fapi/v1/allOrders", {"symbol": sym, "limit": 1000}):
            if is_entry(o["clientOrderId"], bool(o.get("reduceOnly"))) and float(o["executedQty"]) > 0:
                yield o["clientOrderId"]


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_kill(int(sys.argv[1]) if len(sys.argv) > 1 else 4,
                              float(sys.argv[2]) if len(sys.argv) > 2 else 60.0, log=print), indent=1, default=str))
