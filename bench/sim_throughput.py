"""Simulator throughput: signed order requests per second it sustains, and their latency percentiles.

The simulator runs in its own process (``bsmart sim`` on a free 127.0.0.1 port, stepped clock) so client and
server do not share a GIL; ``--workers`` concurrent aiohttp connections send signed ``POST /fapi/v1/order`` MARKET
orders (alternately buy and sell, so the position stays flat) for ``--requests`` requests in total. Each request is
validated, matched against the synthesized book, booked (fees, PnL, income) and answered with its RESULT. The
order-rate limits are lifted through the admin API first, so the figure is the ceiling, not Binance's 1200/min.

    .venv/bin/python bench/sim_throughput.py [--requests 4000] [--workers 8] [--client raw|ccxt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode

import aiohttp

from trader.sim.auth import sign
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET


def start_simulator() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "sim", "--port", "0", "--speed", "0",
                             "--pairs", "BTC/USDT:USDT"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, m.group(1)


def admin(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


async def raw_worker(url: str, session: aiohttp.ClientSession, n: int, offset: int, lat: list[float],
                     errors: list[str]) -> None:
    for i in range(n):
        side = "BUY" if (i + offset) % 2 == 0 else "SELL"
        q = urlencode({"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.002",
                       "newOrderRespType": "RESULT", "recvWindow": 10000, "timestamp": int(time.time() * 1000)})
        body = q + "&signature=" + sign(DEFAULT_API_SECRET, q)
        t0 = time.perf_counter()
        async with session.post(url + "/fapi/v1/order", data=body, headers={
                "X-MBX-APIKEY": DEFAULT_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}) as r:
            payload = await r.read()
            if r.status != 200:
                errors.append(payload.decode()[:200])
        lat.append(time.perf_counter() - t0)


async def ccxt_worker(url: str, n: int, offset: int, lat: list[float], errors: list[str]) -> None:
    from trader.sim.client import make_async_client

    ex = make_async_client(url)
    try:
        await ex.load_markets()
        for i in range(n):
            side = "buy" if (i + offset) % 2 == 0 else "sell"
            t0 = time.perf_counter()
            try:
                await ex.create_order("BTC/USDT:USDT", "market", side, 0.002)
            except Exception as e:  # counted, not fatal: the bench reports them
                errors.append(str(e)[:200])
            lat.append(time.perf_counter() - t0)
    finally:
        await ex.close()


async def run(url: str, total: int, workers: int, client: str) -> tuple[float, list[float], list[str]]:
    lat: list[float] = []
    errors: list[str] = []
    per = total // workers
    t0 = time.perf_counter()
    if client == "raw":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:
            await asyncio.gather(*(raw_worker(url, session, per, w, lat, errors) for w in range(workers)))
    else:
        await asyncio.gather(*(ccxt_worker(url, per, w, lat, errors) for w in range(workers)))
    return time.perf_counter() - t0, lat, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--client", choices=("raw", "ccxt"), default="raw")
    args = ap.parse_args()
    proc, url = start_simulator()
    try:
        admin(url, "/_sim/limits", {"order_limit_10s": 10**9, "order_limit_1m": 10**9})
        admin(url, "/_sim/deposit", {"amount": 10**7})  # fees over thousands of orders must not exhaust margin
        asyncio.run(run(url, min(200, args.requests), args.workers, args.client))  # warm-up
        elapsed, lat, errors = asyncio.run(run(url, args.requests, args.workers, args.client))
    finally:
        proc.terminate()
        proc.wait(10)
    lat.sort()
    n = len(lat)
    p = lambda q: lat[min(n - 1, int(q * n))] * 1000  # noqa: E731
    print(f"simulator order throughput ({args.client} client, {args.workers} connections, {n} orders)")
    print(f"  sustained: {n / elapsed:,.0f} order requests/s over {elapsed:.2f} s")
    print(f"  latency:   p50 {p(0.50):.2f} ms   p99 {p(0.99):.2f} ms   max {lat[-1] * 1000:.2f} ms   "
          f"mean {statistics.mean(lat) * 1000:.2f} ms")
    print(f"  errors:    {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
