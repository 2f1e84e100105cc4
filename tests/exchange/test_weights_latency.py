from __future__ import annotations

import asyncio
import logging

import pytest

from trader.exchange.latency import LatencyMonitor, LatencyTier
from trader.exchange.order_ids import PATTERN, client_order_id, is_ours
from trader.exchange.weights import Priority, WeightGate


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_headers_set_used_weight_and_warn_once_per_minute(caplog) -> None:
    wall = Clock(60 * 1000 + 5)
    warnings = []
    gate = WeightGate(100, wall=wall, on_warning=lambda used, limit: warnings.append(used))
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "50"})
    assert gate.used() == 50 and warnings == []
    with caplog.at_level(logging.WARNING):
        gate.observe_headers({"x-mbx-used-weight-1m": "81"})
        gate.observe_headers({"x-mbx-used-weight-1m": "85"})
    assert warnings == [81]
    wall.t += 60  # a new minute: Binance's counter starts again
    assert gate.used() == 0


async def test_protective_requests_go_first_when_the_budget_is_tight() -> None:
    wall = Clock(60 * 1000 + 1)
    gate = WeightGate(100, wall=wall, entry_share=0.9, data_share=0.7)
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "95"})
    order: list[str] = []

    async def request(name: str, prio: Priority) -> None:
        await gate.acquire(prio, 1)
        order.append(name)

    tasks = [asyncio.create_task(request(n, p)) for n, p in
             (("candles", Priority.MARKET_DATA), ("entry", Priority.ENTRY), ("cancel", Priority.PROTECT))]
    await asyncio.sleep(0.01)
    assert order == ["cancel"]  # only protection may use the last 10 %
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "10"})  # the counter dropped (new minute on the server)
    await asyncio.sleep(0.01)
    assert order == ["cancel", "entry", "candles"]
    await asyncio.gather(*tasks)


async def test_ban_pauses_everything_until_retry_after() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono)
    gate.observe_ban(2.0, 429)
    assert gate.paused_for() == pytest.approx(2.0)
    task = asyncio.create_task(gate.acquire(Priority.PROTECT))
    await asyncio.sleep(0.01)
    assert not task.done()
    mono.t += 2.5
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "1"})
    await asyncio.wait_for(task, 1)


async def test_cancelled_waiter_leaves_the_queue() -> None:
    gate = WeightGate(10, wall=Clock(60 * 5 + 1))
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "10"})
    task = asyncio.create_task(gate.acquire(Priority.MARKET_DATA))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate._queue == []


def test_latency_tiers_rise_at_once_and_fall_after_the_hold() -> None:
    clock = Clock(0.0)
    changes = []
    mon = LatencyMonitor(hold_s=10, window=20, clock=clock, on_tier_change=lambda a, b: changes.append((a, b)))
    for _ in range(20):
        mon.record_rest("POST /fapi/v1/order", 5.0)
    assert mon.tier is LatencyTier.NORMAL
    mon.record_rest("POST /fapi/v1/order", 1500.0)  # p99 of the window jumps past 1000 ms
    assert mon.tier is LatencyTier.EMERGENCY
    for _ in range(20):
        mon.record_rest("GET /fapi/v1/klines", 5.0)  # the slow sample leaves the window
    assert mon.tier is LatencyTier.EMERGENCY  # not yet: the lower tier must hold
    clock.t += 11
    mon.record_rest("GET /fapi/v1/klines", 5.0)
    assert mon.tier is LatencyTier.NORMAL
    assert changes == [(LatencyTier.NORMAL, LatencyTier.EMERGENCY), (LatencyTier.EMERGENCY, LatencyTier.NORMAL)]
    stats = mon.rest_stats("POST /fapi/v1/order")
    assert stats.count == 20 and stats.p50_ms == 5.0 and stats.p99_ms > 100


@pytest.mark.parametrize(("p99", "tier"), [(50, LatencyTier.NORMAL), (200, LatencyTier.SAFE),
                                           (700, LatencyTier.NO_ENTRIES), (1200, LatencyTier.EMERGENCY)])
def test_tier_thresholds(p99: float, tier: LatencyTier) -> None:
    mon = LatencyMonitor(window=5)
    for _ in range(5):
        mon.record_rest("x", p99)
    assert mon.tier is tier


def test_websocket_delay() -> None:
    mon = LatencyMonitor()
    mon.record_ws("btcusdt@kline_1m", 1_000, received_ms=1_012)
    mon.record_ws("btcusdt@kline_1m", 2_000, received_ms=2_030)
    assert mon.ws_stats("btcusdt@kline_1m").p50_ms == pytest.approx(21.0)


def test_client_order_ids_are_deterministic_and_valid() -> None:
    a = client_order_id(1234, "stop", 2, run="dry")
    assert a == client_order_id(1234, "stop", 2, run="dry") == "bsm-dry-1234-stop-2"
    assert PATTERN.match(a) and is_ours(a) and not is_ours("x-cvBPrNm9abc")
    with pytest.raises(ValueError):
        client_order_id(1, "moon")
    with pytest.raises(ValueError):
        client_order_id(10**40, "entry")
