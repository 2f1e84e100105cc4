"""Rate limits against the simulator (issue 11, finding 4): a 429 caused by reads must not hold back stops and
exits; an order refused with 429 is sent again shortly, not parked for the whole Retry-After; a 418 refuses
everything at once; whoever asked is told plainly that nothing was sent, and for how long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.exchange.conftest import PAIRS, make_client
from trader.exchange.client import OrderNotWanted, not_sent
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.exchange.weights import Limit, Priority, RateLimited

BTC = "BTC/USDT:USDT"
RETRY_AFTER = 45  # what the simulator's 429s ask for: long enough that any hidden wait shows


@pytest.fixture
async def ready(sim):
    sim.weights.retry_after = lambda: RETRY_AFTER
    client = make_client(sim)
    await client.initialize(PAIRS, 25)
    entry = await client.create_order(OrderRequest(BTC, "buy", "market", client_order_id(1, "entry"),
                                                   amount=Decimal("0.002")))
    yield sim, client, entry.average
    sim.set_faults({"error_share": 0.0})
    await client.close()


def _script(kinds: list[str | None]) -> Iterator[str | None]:
    yield from kinds
    while True:
        yield None


def _fail_next(sim, *kinds: str | None) -> None:
    """The next /fapi requests the simulator answers fail with these fault kinds (None: answered normally)."""
    script = _script(list(kinds))
    sim.faults.pick_failure = lambda: next(script)


def _stop(client, price: Decimal, n: int = 1) -> OrderRequest:
    return OrderRequest(BTC, "sell", "stop_market", client_order_id(n, "stop"), amount=Decimal("0.002"),
                        trigger_price=client.price_to_precision(BTC, price * Decimal("0.97")), reduce_only=True)


def _orders(sim, cid: str) -> list:
    """Regular and conditional orders the simulator holds under this client id."""
    return [o for o in [*sim.exchange.orders.values(), *sim.exchange.algos.values()]
            if cid in (getattr(o, "client_id", None), getattr(o, "client_algo_id", None))]


async def test_a_429_on_market_data_does_not_delay_a_stop(ready) -> None:
    sim, client, price = ready
    sim.set_faults({"error_share": 1.0, "error_kinds": ["429"]})
    started = time.monotonic()
    with pytest.raises(ExchangeError) as info:
        await asyncio.wait_for(client.fetch_ohlcv(BTC, "1m", limit=10), 5)
    assert not_sent(info.value) and info.value.info.http_status == 429
    assert time.monotonic() - started < 3  # told at once, not after sleeping out the Retry-After
    sim.set_faults({"error_share": 0.0})
    assert client.gate.paused_for(Priority.MARKET_DATA) > 30
    # The stop goes now, not in 45 s.
    started = time.monotonic()
    stop = await asyncio.wait_for(client.create_order(_stop(client, price)), 2)
    assert stop.is_open and time.monotonic() - started < 1
    # A new entry in the same pause is refused at once, and says so.
    request = OrderRequest(BTC, "buy", "market", client_order_id(2, "entry"), amount=Decimal("0.002"))
    with pytest.raises(RateLimited) as refused:
        await asyncio.wait_for(client.create_order(request), 1)
    assert refused.value.limit is Limit.WEIGHT and not refused.value.sent
    assert "not sent" in str(refused.value) and "klines" in str(refused.value)
    assert 30 < refused.value.wait_s <= RETRY_AFTER
    assert _orders(sim, request.client_order_id) == []
    # Reads are refused at once too (not parked, then fired in a burst when the pause ends)…
    with pytest.raises(RateLimited):
        await asyncio.wait_for(client.fetch_balance(), 1)
    with pytest.raises(RateLimited):
        await asyncio.wait_for(client.fetch_positions(), 1)
    # …except the position read a flatten or an exit needs.
    positions = await asyncio.wait_for(client.fetch_positions(protective=True), 1)
    assert [(p.pair, p.contracts) for p in positions] == [(BTC, Decimal("0.002"))]


async def test_an_order_refused_with_429_is_sent_again_shortly(ready) -> None:
    sim, client, price = ready
    request = _stop(client, price)
    _fail_next(sim, "429")
    started = time.monotonic()
    stop = await asyncio.wait_for(client.create_order(request), 5)
    assert time.monotonic() - started < 2  # a short backoff, not the 45 s Retry-After
    assert stop.client_order_id == request.client_order_id and len(_orders(sim, request.client_order_id)) == 1


async def test_a_protective_order_refused_again_and_again_gives_up_with_a_clear_error(ready) -> None:
    sim, client, price = ready
    request = _stop(client, price)
    _fail_next(sim, "429", "429", "429", "429", "429")
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        await asyncio.wait_for(client.create_order(request), 5)
    assert time.monotonic() - started < 3
    assert "not sent" in str(info.value) and _orders(sim, request.client_order_id) == []


async def test_an_entry_refused_with_429_is_not_parked(ready) -> None:
    sim, client, _ = ready
    request = OrderRequest(BTC, "buy", "market", client_order_id(3, "entry"), amount=Decimal("0.002"))
    _fail_next(sim, "429")
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        await asyncio.wait_for(client.create_order(request), 5)
    assert time.monotonic() - started < 1 and not info.value.sent
    assert _orders(sim, request.client_order_id) == []


async def test_a_held_back_order_is_rechecked_before_it_goes(ready) -> None:
    sim, client, price = ready
    request = _stop(client, price)
    asked: list[str] = []

    async def still_wanted(req: OrderRequest) -> bool:
        asked.append(req.client_order_id)
        return False  # e.g. the position was closed meanwhile

    _fail_next(sim, "429")
    with pytest.raises(OrderNotWanted) as info:
        await client.create_order(request, still_wanted=still_wanted)
    assert asked == [request.client_order_id] and not_sent(info.value) and not info.value.sent
    assert _orders(sim, request.client_order_id) == []
    # Not held back: not asked.
    placed = await client.create_order(_stop(client, price, 2), still_wanted=still_wanted)
    assert placed.is_open and asked == [request.client_order_id]


async def test_a_418_refuses_everything_at_once(ready) -> None:
    sim, client, price = ready
    sim.weights.set_limits({"limit": 1, "ban_after_429s": 0})  # the next request earns a ban
    with pytest.raises(RateLimited) as info:
        await client.fetch_balance()
    assert info.value.banned and "banned" in str(info.value)
    sent = client.latency.rest_stats().count
    started = time.monotonic()
    for call in (lambda: client.create_order(_stop(client, price)), client.fetch_positions,
                 lambda: client.cancel_all(BTC)):
        with pytest.raises(RateLimited) as refused:
            await asyncio.wait_for(call(), 1)
        assert refused.value.banned and refused.value.wait_s > 100
    assert time.monotonic() - started < 0.5
    assert client.latency.rest_stats().count == sent  # nothing reached the exchange


async def test_a_request_without_an_answer_counts_as_latency(sim) -> None:
    client = make_client(sim, timeout_ms=150)
    try:
        sim.set_faults({"latency_ms": 400})
        with pytest.raises(ExchangeError):
            await client.fetch_time()
        stats = client.latency.rest_stats()
        assert stats.count >= 1 and stats.p99_ms >= 140
    finally:
        sim.set_faults({"latency_ms": 0})
        await client.close()
