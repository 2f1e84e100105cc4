from __future__ import annotations

import asyncio
import logging

import pytest

from trader.exchange.latency import LatencyMonitor, LatencyTier
from trader.exchange.order_ids import PATTERN, client_order_id, is_ours
from trader.exchange.weights import Limit, Priority, RateLimited, WeightGate


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
    gate = WeightGate(100, wall=wall, entry_share=0.9, data_share=0.7, max_wait_s={p: 120.0 for p in Priority})
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


async def test_a_request_that_would_wait_past_its_bound_is_refused_at_once() -> None:
    """No hidden wait: with the minute's budget spent, a read is told at once how long it would have to wait."""
    gate = WeightGate(100, wall=Clock(60 * 1000 + 1))
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "95"})
    with pytest.raises(RateLimited) as info:
        await asyncio.wait_for(gate.acquire(Priority.MARKET_DATA, 5, operation="fetch_ohlcv"), 0.5)
    assert not info.value.sent and info.value.wait_s == pytest.approx(59, abs=1)
    assert "not sent" in str(info.value) and "59 s" in str(info.value)
    await gate.acquire(Priority.PROTECT, 1)  # protection still goes


async def test_a_waiter_still_queued_at_its_bound_is_refused_not_fired_later() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono, max_wait_s={Priority.ACCOUNT: 0.05})
    gate.observe_limit(429, 0.04, endpoint="GET /fapi/v1/klines")  # within the bound: the read waits…
    task = asyncio.create_task(gate.acquire(Priority.ACCOUNT, operation="fetch_balance"))
    await asyncio.sleep(0.01)
    assert not task.done()
    gate.observe_limit(429, 30.0, endpoint="GET /fapi/v1/klines")  # …then another 429 extends the pause past it
    with pytest.raises(RateLimited) as info:
        await asyncio.wait_for(task, 1)
    assert info.value.wait_s == pytest.approx(30) and info.value.cause == "GET /fapi/v1/klines"
    assert gate._queue == []


async def test_a_429_on_market_data_pauses_reads_and_entries_but_not_protection() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono)
    gate.observe_limit(429, 40.0, code=-1003, endpoint="GET /fapi/v1/klines")
    assert gate.paused_for() == pytest.approx(40.0)
    assert gate.paused_for(Priority.MARKET_DATA) == gate.paused_for(Priority.ENTRY) == pytest.approx(40.0)
    assert gate.paused_for(Priority.PROTECT) == 0
    # The stop goes at once, however long the pause.
    assert await asyncio.wait_for(gate.acquire(Priority.PROTECT, operation="create_order"), 0.1) == 0.0
    for prio in (Priority.ENTRY, Priority.ACCOUNT, Priority.MARKET_DATA):
        with pytest.raises(RateLimited) as info:
            await asyncio.wait_for(gate.acquire(prio, operation="x"), 0.1)  # refused at once, not parked
        assert info.value.limit is Limit.WEIGHT and "klines" in str(info.value) and "40 s" in str(info.value)
    mono.t += 41
    await asyncio.wait_for(gate.acquire(Priority.ENTRY), 0.1)


async def test_a_short_pause_is_waited_out_within_the_bound() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono, max_wait_s={Priority.MARKET_DATA: 10.0})
    gate.observe_limit(429, 2.0)
    task = asyncio.create_task(gate.acquire(Priority.MARKET_DATA))
    await asyncio.sleep(0.01)
    assert not task.done()
    mono.t += 2.5
    gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "1"})
    await asyncio.wait_for(task, 1)


async def test_protection_is_paused_too_once_it_was_refused_repeatedly() -> None:
    """Binance bans (418) an IP that keeps going after 429s: protection gets a few tries, then waits too."""
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono, max_strikes=3)
    gate.observe_limit(429, 30.0, endpoint="GET /fapi/v1/klines")
    gate.observe_limit(429, 30.0, endpoint="POST /fapi/v1/algoOrder")
    assert gate.paused_for(Priority.PROTECT) == 0
    gate.observe_limit(429, 30.0, endpoint="POST /fapi/v1/algoOrder")
    with pytest.raises(RateLimited) as info:
        await gate.acquire(Priority.PROTECT, operation="create_order")
    assert info.value.wait_s == pytest.approx(30.0)


async def test_an_order_count_429_pauses_entries_only() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono)
    gate.observe_limit(429, None, code=-1015, endpoint="POST /fapi/v1/order")
    with pytest.raises(RateLimited) as info:
        await gate.acquire(Priority.ENTRY, operation="create_order")
    assert info.value.limit is Limit.ORDERS and info.value.info.code == -1015
    await asyncio.wait_for(gate.acquire(Priority.MARKET_DATA), 0.1)
    await asyncio.wait_for(gate.acquire(Priority.PROTECT), 0.1)


async def test_a_418_refuses_everything_with_a_clear_error() -> None:
    mono = Clock(100.0)
    gate = WeightGate(2400, clock=mono)
    gate.observe_limit(418, None, endpoint="GET /fapi/v1/klines")
    for prio in Priority:
        with pytest.raises(RateLimited) as info:
            await asyncio.wait_for(gate.acquire(prio, operation="create_order"), 0.1)
        assert info.value.banned and info.value.info.http_status == 418
        assert "banned" in str(info.value) and "120 s" in str(info.value)
    mono.t += 121
    await gate.acquire(Priority.PROTECT)


async def test_cancelled_waiter_leaves_the_queue() -> None:
    gate = WeightGate(10, wall=Clock(60 * 5 + 59.5))
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
    stats = mon.rest_stats("POST /fapi/v1/order")
    assert stats.count == 20 and stats.p50_ms == 5.0 and stats.p99_ms > 100
    clock.t += 11
    mon.record_rest("GET /fapi/v1/klines", 5.0)
    assert mon.tier is LatencyTier.NORMAL
    assert changes == [(LatencyTier.NORMAL, LatencyTier.EMERGENCY), (LatencyTier.EMERGENCY, LatencyTier.NORMAL)]
    assert mon.rest_stats("POST /fapi/v1/order").count == 0  # older than the window: they no longer count


def test_tier_falls_back_within_the_hold_after_spikes_end_even_with_no_new_samples() -> None:
    """Issue 11: 2 s spikes, then entries paused and almost no requests: 70 s and 8 minutes later the tier still
    said emergency with the stale p99. Now the tier is normal one hold time after the last slow request began."""
    clock = Clock(1_000.0)
    changes = []
    mon = LatencyMonitor(hold_s=60, clock=clock, on_tier_change=lambda a, b: changes.append((a, b)))
    for _ in range(100):
        mon.record_rest("GET /fapi/v3/account", 40.0)
    for _ in range(5):
        clock.t += 2.1
        mon.record_rest("GET /fapi/v3/positionRisk", 2062.0)  # the last starts at 1_010.5 − 2.062
    last_slow_start = clock.t - 2.062
    assert mon.tier is LatencyTier.EMERGENCY and mon.rest_stats().p99_ms == pytest.approx(2062, rel=0.01)
    clock.t = last_slow_start + 55
    assert mon.tier is LatencyTier.EMERGENCY  # within the hold
    clock.t = last_slow_start + 60.01  # not one new sample since the spikes
    assert mon.tier is LatencyTier.NORMAL
    assert changes == [(LatencyTier.NORMAL, LatencyTier.EMERGENCY), (LatencyTier.EMERGENCY, LatencyTier.NORMAL)]
    assert mon.last_change is not None and mon.last_change.p99_ms is None  # fell for lack of evidence
    stats = mon.rest_stats()
    assert stats.p99_ms is None and stats.count == 0  # unknown, not the stale 2062 ms
    clock.t += 8 * 60
    assert mon.tier is LatencyTier.NORMAL and mon.rest_stats().p99_ms is None


def test_refresh_announces_a_fall_without_a_sample() -> None:
    clock = Clock(0.0)
    changes = []
    mon = LatencyMonitor(hold_s=5, clock=clock, on_tier_change=lambda a, b: changes.append((a, b)))
    mon.record_rest("x", 700.0)
    assert mon.tier is LatencyTier.NO_ENTRIES
    clock.t += 6
    assert mon.refresh() is LatencyTier.NORMAL
    assert changes[-1] == (LatencyTier.NO_ENTRIES, LatencyTier.NORMAL)


def test_a_fast_answer_in_the_middle_of_trouble_does_not_flip_the_tier() -> None:
    clock = Clock(0.0)
    mon = LatencyMonitor(hold_s=10, window=3, clock=clock)
    for _ in range(3):
        clock.t += 1
        mon.record_rest("x", 1500.0)
    for _ in range(3):
        clock.t += 0.5
        mon.record_rest("x", 5.0)  # the count window holds only fast answers now
    assert mon.tier is LatencyTier.EMERGENCY
    clock.t += 1
    mon.record_rest("x", 1500.0)  # trouble again (started 1.5 s ago): the hold starts over from this request
    clock.t += 8
    assert mon.tier is LatencyTier.EMERGENCY
    clock.t += 1.6
    assert mon.tier is LatencyTier.NORMAL


def test_tiers_step_down_as_their_own_evidence_ages() -> None:
    clock = Clock(0.0)
    mon = LatencyMonitor(hold_s=10, window=2, window_s=10, clock=clock)
    mon.record_rest("x", 1500.0)
    assert mon.tier is LatencyTier.EMERGENCY
    clock.t += 6
    mon.record_rest("x", 700.0)
    mon.record_rest("x", 700.0)  # the window says "no entries" now
    clock.t += 5
    assert mon.tier is LatencyTier.NO_ENTRIES  # emergency evidence is 12.5 s old; no-entries 5.7 s
    clock.t += 5
    assert mon.tier is LatencyTier.NORMAL


def test_samples_older_than_the_window_do_not_count() -> None:
    clock = Clock(0.0)
    mon = LatencyMonitor(hold_s=60, window_s=30, clock=clock)
    mon.record_rest("a", 300.0)
    clock.t += 20
    mon.record_rest("a", 10.0)
    assert mon.rest_stats("a").count == 2
    clock.t += 15
    assert mon.rest_stats("a").count == 1 and mon.rest_stats("a").p99_ms == 10.0
    assert mon.endpoints()["a"].count == 1


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
