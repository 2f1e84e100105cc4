"""The exchange client against the simulator over real sockets: start-up checks, error classes, idempotent orders,
weights and latency. Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.exchange.conftest import PAIRS, make_client
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.errors import ErrorClass, ExchangeError
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.exchange.weights import Priority, RateLimited


async def test_initialize_sets_cross_and_leverage_idempotently(sim, client) -> None:
    report = await client.initialize(PAIRS, 25)
    assert report.ok and report.balance.wallet == Decimal("10000")
    assert sim.exchange.leverage["BTCUSDT"] == 25
    assert sim.exchange.margin_type["BTCUSDT"] in ("CROSSED", "cross", "CROSS")
    again = await client.initialize(PAIRS, 25)  # "no need to change" answers count as success
    assert again.ok and not any("margin type" in c for c in again.changed)


async def test_initialize_switches_hedge_mode_back_to_one_way(sim, client) -> None:
    sim.exchange.account.dual_side = True
    report = await client.initialize(PAIRS, 25)
    assert "position mode: hedge -> one-way" in report.changed
    assert sim.exchange.account.dual_side is False


async def test_initialize_refuses_unknown_pairs(sim, client) -> None:
    with pytest.raises(ExchangeError, match="not listed on the exchange: DOGE/USDT:USDT"):
        await client.initialize(["DOGE/USDT:USDT"], 25)


async def test_live_refuses_a_key_that_can_withdraw(sim) -> None:
    sim.cfg.api_restrictions["enableWithdrawals"] = True
    client = make_client(sim, live=True)
    try:
        with pytest.raises(ExchangeError, match="can withdraw") as info:
            await client.initialize(PAIRS, 25)
        assert info.value.error_class is ErrorClass.PERMISSION
    finally:
        await client.close()


async def test_permission_class_from_a_bad_key(sim) -> None:
    halted = []
    client = make_client(sim, secret="wrong" * 12)
    client._on_permission_error = halted.append
    try:
        with pytest.raises(ExchangeError) as info:
            await client.fetch_balance()
        assert info.value.error_class is ErrorClass.PERMISSION and info.value.info.code == -1022
        assert halted  # the engine's halt hook fired
    finally:
        await client.close()


async def test_parameter_and_account_classes(sim, client) -> None:
    await client.initialize(PAIRS, 25)
    tiny = OrderRequest("BTC/USDT:USDT", "buy", "market", client_order_id(1, "entry"), amount=Decimal("0.001"))
    with pytest.raises(ExchangeError) as info:
        await client.create_order(tiny)  # ~96 USDT < BTC's 100 USDT minimum notional
    assert (info.value.error_class, info.value.info.code) == (ErrorClass.PARAMETER, -4164)
    huge = OrderRequest("BTC/USDT:USDT", "buy", "market", client_order_id(2, "entry"), amount=Decimal("100"))
    with pytest.raises(ExchangeError) as info:
        await client.create_order(huge)
    assert info.value.error_class is ErrorClass.ACCOUNT and info.value.info.code == -2019
    assert await client.fetch_positions() == []  # both refused, nothing opened


async def test_temporary_errors_on_reads_are_retried(sim, client) -> None:
    sim.set_faults({"error_share": 0.5, "error_kinds": ["503", "-1001"], "seed": 3})
    for _ in range(5):
        assert (await client.fetch_balance()).wallet == Decimal("10000")
    sim.set_faults({"error_share": 0.0})
    assert client.api_errors > 0  # failures happened and were absorbed


async def test_unknown_outcome_is_resolved_by_client_id_never_sent_twice(sim, client) -> None:
    await client.initialize(PAIRS, 25)
    # Every answer is "-1007 timeout, execution status unknown" although the order was executed.
    sim.set_faults({"error_share": 1.0, "error_kinds": ["-1007"], "seed": 1})
    request = OrderRequest("ETH/USDT:USDT", "buy", "market", client_order_id(7, "entry"), amount=Decimal("0.1"))
    try:
        with pytest.raises(ExchangeError):
            # Lookups fail too while every answer fails: the client must give up rather than resend blindly.
            await client.create_order(request)
    finally:
        sim.set_faults({"error_share": 0.0})
    placed = [o for o in sim.exchange.orders.values() if o.client_id == request.client_order_id]
    assert len(placed) == 1  # executed once, and never again
    # Once answers come back, the engine resolves the request by its client id: that one order.
    state = await client.find_order(request)
    assert state.client_order_id == request.client_order_id and state.status == "closed"
    assert len([o for o in sim.exchange.orders.values() if o.client_id == request.client_order_id]) == 1
    positions = await client.fetch_positions()
    assert [(p.pair, p.contracts) for p in positions] == [("ETH/USDT:USDT", Decimal("0.1"))]


async def test_stops_and_take_profits_go_to_the_algo_endpoint(sim, client) -> None:
    await client.initialize(PAIRS, 25)
    entry = await client.create_order(OrderRequest("BTC/USDT:USDT", "buy", "market", client_order_id(9, "entry"),
                                                   amount=Decimal("0.002")))
    price = entry.average
    stop = await client.create_order(OrderRequest(
        "BTC/USDT:USDT", "sell", "stop_market", client_order_id(9, "stop"), amount=Decimal("0.002"),
        trigger_price=client.price_to_precision("BTC/USDT:USDT", price * Decimal("0.97")), reduce_only=True))
    take = await client.create_order(OrderRequest(
        "BTC/USDT:USDT", "sell", "take_profit_market", client_order_id(9, "tp1"), amount=Decimal("0.001"),
        trigger_price=client.price_to_precision("BTC/USDT:USDT", price * Decimal("1.02")), reduce_only=True))
    assert stop.is_algo and take.is_algo and stop.is_open
    opened = await client.fetch_open_orders("BTC/USDT:USDT")
    assert {o.client_order_id for o in opened} == {stop.client_order_id, take.client_order_id}
    assert await client.cancel_order("BTC/USDT:USDT", take.id, algo=True) is True
    assert await client.cancel_order("BTC/USDT:USDT", take.id, algo=True) is False  # already gone
    await client.cancel_all("BTC/USDT:USDT")
    assert await client.fetch_open_orders("BTC/USDT:USDT") == []


async def test_weights_and_latency_are_measured(sim, client) -> None:
    await client.fetch_balance()
    await client.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=100)
    assert client.gate.used() > 0
    endpoints = client.latency.endpoints()
    assert "GET /fapi/v3/account" in endpoints and "GET /fapi/v1/klines" in endpoints
    assert endpoints["GET /fapi/v1/klines"].p99_ms < 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_duplicate_orders_under_random_faults(sim, client, seed: int) -> None:
    """A mix of executed-but-unanswered (−1007) and failed (503, −1001) answers: every request ends as exactly
    one order or none, and the client's answer agrees with the exchange."""
    await client.initialize(PAIRS, 25)
    sim.set_faults({"error_share": 0.4, "error_kinds": ["-1007", "503", "-1001"], "seed": seed})
    requests = [OrderRequest("ETH/USDT:USDT", "buy" if i % 2 else "sell", "market", client_order_id(100 + i, "entry"),
                             amount=Decimal("0.02") * (i + 1)) for i in range(12)]
    answered: dict[str, str] = {}
    for request in requests:
        try:
            answered[request.client_order_id] = (await client.create_order(request)).id
        except ExchangeError as exc:
            assert exc.info.retryable or exc.info.state_unknown
    sim.set_faults({"error_share": 0.0})
    for request in requests:
        placed = [o for o in sim.exchange.orders.values() if o.client_id == request.client_order_id]
        assert len(placed) <= 1, request.client_order_id
        found = await client.find_order(request)
        assert (found is not None) == bool(placed)
        if request.client_order_id in answered:
            assert found is not None and found.id == answered[request.client_order_id]


async def test_weight_limit_is_learned_and_a_429_pauses_the_client(sim) -> None:
    sim.weights.limit = 1000
    client = make_client(sim)
    try:
        await client.initialize(PAIRS, 25)
        assert client.gate.state.limit == 1000  # read from exchangeInfo, not assumed
        # A 429 from the exchange pauses requests for Retry-After; a protective request refused again and again
        # (here every answer is a 429) is paused too, and told so at once (weights.py).
        sim.weights.retry_after = lambda: 30
        sim.set_faults({"error_share": 1.0, "error_kinds": ["429"]})
        client.options.backoff = BackoffPolicy(attempts=1)
        with pytest.raises(ExchangeError) as info:
            await client.fetch_order("BTC/USDT:USDT", "nope", algo=False)
        assert info.value.info.http_status == 429 and info.value.error_class is ErrorClass.TEMPORARY
        assert client.gate.paused_for() > 0
        with pytest.raises(RateLimited):
            await asyncio.wait_for(client.gate.acquire(Priority.PROTECT), 0.1)
    finally:
        sim.set_faults({"error_share": 0.0})
        await client.close()


async def test_resting_orders_are_cancelled_in_batches(sim, client) -> None:
    await client.initialize(PAIRS, 25)
    ids = []
    for i in range(12):  # more than one batch of 10
        state = await client.create_order(OrderRequest("ETH/USDT:USDT", "buy", "limit", client_order_id(i, "entry"),
                                                       amount=Decimal("0.05"), price=Decimal("1750") - i))
        ids.append(state.id)
    before = client.latency.rest_stats("DELETE /fapi/v1/batchOrders").count
    assert await client.cancel_orders("ETH/USDT:USDT", ids) == 12
    assert client.latency.rest_stats("DELETE /fapi/v1/batchOrders").count - before == 2
    assert await client.fetch_open_orders("ETH/USDT:USDT") == []
