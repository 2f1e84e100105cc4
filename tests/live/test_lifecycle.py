"""Start and stop from another event loop without blocking it; nothing left behind; stops re-placed at start."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from tests.live.conftest import BTC, OneShot, make_engine_for, position_amt, sim_state, step_minutes
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.live.host import EngineHost
from trader.sim.client import point_at
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET


def _engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("live-", "live-engine"))]


async def test_start_and_stop_from_a_loop_never_block_it_and_leave_nothing(sim) -> None:
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62})
    ticks = 0
    longest = 0.0

    async def heartbeat() -> None:
        nonlocal ticks, longest
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.002)
            now = loop.time()
            longest = max(longest, now - last)
            last = now
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    tasks_before = {t for t in asyncio.all_tasks() if t is not beat}
    before, t0 = ticks, time.perf_counter()
    await engine.start_async()
    start_s = time.perf_counter() - t0
    assert engine.state == "running"
    # Blocked, the loop would not tick at all while the engine connects, checks the account and loads history.
    assert ticks - before >= 5, (ticks - before, start_s)
    await asyncio.to_thread(step_minutes, sim, engine, 2)
    assert engine.status().bars[BTC] >= 60 + 2  # history plus the live bars
    await engine.stop_async()
    await engine.stop_async()  # a second stop is harmless
    beat.cancel()
    await asyncio.gather(beat, return_exceptions=True)
    assert engine.state == "stopped"
    # A loaded CI machine may delay a 2 ms sleep, but never by a whole start-up (which takes ≥ 50 ms).
    assert longest < max(0.25, 0.5 * start_s), f"the caller's loop stalled for {longest * 1000:.0f} ms"
    assert _engine_threads() == []
    assert not engine.host.running
    assert {t for t in asyncio.all_tasks() if not t.done()} <= tasks_before | {asyncio.current_task()}
    assert [e.state for e in rec.events if e.kind == "engine_state"] == ["running", "stopped"]
    gc.collect()


def test_restart_after_stop_and_host_reuse(sim) -> None:
    host = EngineHost()
    engine, _ = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62})
    engine.host, engine._own_host = host, False
    engine.start()
    engine.stop()
    assert host.running  # a shared host outlives the engine
    engine.start()
    pacer = engine.store.pacer
    threshold = gc.get_threshold()
    engine.wait_idle()
    deadline = time.monotonic() + 5
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Once the history is consumed, collections come after each minute (gc_pacer.py).
    assert gc.get_freeze_count() > 0 and gc.get_threshold()[0] == pacer.young_threshold
    young = pacer.stats.young
    step_minutes(sim, engine, 1)
    while pacer.stats.young <= young and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pacer.stats.young > young
    engine.stop()
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
    host.stop()
    assert _engine_threads() == []


def test_start_replaces_a_missing_stop_for_an_open_position(sim) -> None:
    async def open_naked() -> None:
        ex = point_at(ccxt_async.binanceusdm({"apiKey": DEFAULT_API_KEY, "secret": DEFAULT_API_SECRET,
                                              "enableRateLimit": False, "options": {"fetchCurrencies": False}}),
                      sim.rest_url)
        try:
            await ex.create_order(BTC, "market", "sell", 0.02)
        finally:
            await ex.close()

    asyncio.run(open_naked())
    assert position_amt(sim) == Decimal("-0.02") and sim_state(sim)["open_algo_orders"] == []
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62})
    engine.start()
    try:
        algos = sim_state(sim)["open_algo_orders"]
        assert len(algos) == 1 and algos[0]["orderType"] == "STOP_MARKET" and algos[0]["side"] == "BUY"
        entry = Decimal(sim_state(sim)["positions"][0]["entry"])
        assert Decimal(algos[0]["triggerPrice"]) > entry  # above a short's entry, 0.8/leverage away
        assert abs(Decimal(algos[0]["triggerPrice"]) / entry - Decimal("1.032")) < Decimal("0.001")
        assert engine.broker.getposition(engine.feeds[BTC]).size == -0.02  # the strategy sees the position
        assert engine.reconcile_stops() == []  # idempotent: nothing missing now
        assert len(sim_state(sim)["open_algo_orders"]) == 1
        assert any(e.kind == "risk_action" and e.action == "stop_replaced" for e in rec.events)
        step_minutes(sim, engine, 1)
    finally:
        engine.stop()
    assert len(sim_state(sim)["open_algo_orders"]) == 1  # stop() keeps positions and their stops


def test_a_failed_start_cleans_up_and_raises(sim) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine, rec = make_engine_for(sim, OneShot)
    engine.client_factory = lambda: ExchangeClient(ClientOptions(
        api_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}", api_key=DEFAULT_API_KEY,
        secret=DEFAULT_API_SECRET, timeout_ms=500, backoff=BackoffPolicy(attempts=1)))
    with pytest.raises(ExchangeError):
        engine.start()
    assert engine.state == "stopped" and _engine_threads() == []
    assert any(e.kind == "error" for e in rec.events)
