"""The trading service against the simulator: every mutating call audited and remembered across a restart."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from tests.exchange.conftest import make_client
from trader.bootstrap import open_core
from trader.config.loader import load_settings
from trader.events import EventBus
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError
from trader.service.proxy import ServiceProxy
from trader.service.service import TradingService
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
ADMIN = Actor("telegram", 42, "admin")


@pytest.fixture
async def sim():
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as server:
        yield server


@pytest.fixture
def settings(write_config, tmp_path):
    path = write_config({"pair_whitelist": ["BTC", "ETH"], "leverage": 10, "max_leverage": 50,
                         "user_data_dir": str(tmp_path / "ud")})
    return load_settings(path, environ={})


async def _service(settings, sim) -> TradingService:
    core = open_core(settings, console_logging=False, file_logging=False)
    client = make_client(sim)
    await client.initialize(settings.pair_whitelist, settings.leverage)
    return TradingService(settings, core, client, EventBus())


async def _close(service: TradingService) -> None:
    await service.client.close()
    service.core.close()


async def test_leverage_change_is_applied_audited_and_survives_a_restart(settings, sim) -> None:
    service = await _service(settings, sim)
    try:
        change = await service.set_leverage(ADMIN, 20)
        assert (change.old, change.new, change.applied) == (10, 20, ("BTC/USDT:USDT", "ETH/USDT:USDT"))
        assert sim.exchange.leverage["BTCUSDT"] == 20 and sim.exchange.leverage["ETHUSDT"] == 20
        with pytest.raises(ServiceError) as info:
            await service.set_leverage(ADMIN, 75)  # above max_leverage 50
        assert info.value.code == "invalid_argument"
        assert service.leverage == 20
    finally:
        await _close(service)
    restarted = await _service(settings, sim)
    try:
        assert restarted.leverage == 20  # RuntimeState wins over the config's 10
        audit = restarted.core.audit.recent(5)
        assert [(a.action, a.outcome) for a in audit[:2]] == [("set_leverage", "refused"), ("set_leverage", "ok")]
        assert audit[1].actor.user_id == 42 and audit[1].arguments == {"leverage": 20}
    finally:
        await _close(restarted)


async def test_leverage_is_refused_when_an_open_stop_would_sit_beyond_liquidation(settings, sim) -> None:
    service = await _service(settings, sim)
    try:
        client = service.client
        # Big enough (≈ 72,000 USDT at 10x on 10,000) for the account to have a real liquidation price.
        await client.create_order(OrderRequest("ETH/USDT:USDT", "buy", "market", client_order_id(1, "entry"),
                                               amount=Decimal("40")))
        entry = (await client.fetch_positions())[0].entry_price
        await client.create_order(OrderRequest(
            "ETH/USDT:USDT", "sell", "stop_market", client_order_id(1, "stop"), amount=Decimal("40"),
            trigger_price=client.price_to_precision("ETH/USDT:USDT", entry * Decimal("0.95")), reduce_only=True))
        with pytest.raises(ServiceError) as info:
            await service.set_leverage(ADMIN, 25)  # 5 % stop, 3.2 % cap at 25x
        assert info.value.code == "refused" and "ETH/USDT:USDT long" in info.value.message
        assert sim.exchange.leverage["ETHUSDT"] == 10  # nothing changed on the exchange
        assert (await service.set_leverage(ADMIN, 15)).new == 15  # 5.33 % cap: allowed
        (pos,) = await service.positions()
        assert pos.stop_price < pos.entry_price and pos.leverage == 15
        # Cross margin: the whole wallet (≈ 10,000 − maintenance) stands behind 40 ETH, about 240 USDT per ETH.
        expected = (pos.mark_price - pos.liquidation_price) / pos.mark_price
        assert pos.liquidation_distance == expected and Decimal("0.10") < expected < Decimal("0.16")
    finally:
        await _close(service)


async def test_whitelist_is_validated_against_the_exchange(settings, sim) -> None:
    service = await _service(settings, sim)
    try:
        view = await service.whitelist_add(ADMIN, ["solusdt"])
        assert view.pairs == ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT") and view.changed == ("SOL/USDT:USDT",)
        for bad, code in ((["DOGE"], "invalid_argument"), (["BTC-USD"], "invalid_argument"), (["BTC"], "conflict")):
            with pytest.raises(ServiceError) as info:
                await service.whitelist_add(ADMIN, bad)
            assert info.value.code == code
        await service.client.create_order(OrderRequest("SOL/USDT:USDT", "buy", "market", client_order_id(5, "entry"),
                                                       amount=Decimal("1")))
        with pytest.raises(ServiceError, match="open positions on SOL"):
            await service.whitelist_remove(ADMIN, ["SOL"])
        assert (await service.whitelist_remove(ADMIN, ["ETH"])).pairs == ("BTC/USDT:USDT", "SOL/USDT:USDT")
        assert service.core.runtime_state.get("pair_whitelist") == ["BTC/USDT:USDT", "SOL/USDT:USDT"]
        outcomes = [(a.action, a.outcome) for a in service.core.audit.recent(10)]
        assert ("whitelist_add", "refused") in outcomes and ("whitelist_remove", "ok") in outcomes
    finally:
        await _close(service)


async def test_flatten_pauses_entries_and_a_second_call_joins_the_first(settings, sim) -> None:
    service = await _service(settings, sim)
    try:
        await service.client.create_order(OrderRequest("BTC/USDT:USDT", "sell", "market", client_order_id(1, "entry"),
                                                       amount=Decimal("0.002")))
        first, second = await asyncio.gather(service.flatten(ADMIN), service.flatten(Actor("cli")))
        assert first.flat and second.flat and second.joined and not first.joined
        closes = [o for o in sim.exchange.orders.values() if "flat" in o.client_id]
        assert len(closes) == 1  # sent once, for both callers
        assert service.paused is True
        assert (await service.status()).paused and (await service.positions()) == []
        with pytest.raises(ServiceError) as info:
            await service.pause(ADMIN)
        assert info.value.code == "conflict"
        await service.resume(ADMIN)
        assert service.paused is False
    finally:
        await _close(service)


async def test_reads_and_engineless_control(settings, sim) -> None:
    service = await _service(settings, sim)
    try:
        balance = await service.balance()
        assert balance.wallet == Decimal("10000") and balance.margin_ratio == 0
        status = await service.status()
        assert (status.running, status.leverage, status.pairs, status.open_positions) == (
            False, 10, ("BTC/USDT:USDT", "ETH/USDT:USDT"), 0)
        health = await service.health()
        assert health.db_ok and health.api_errors == 0 and health.latency_p99_ms is not None
        with pytest.raises(ServiceError) as info:
            await service.start(ADMIN)
        assert info.value.code == "not_running"
        assert await service.trades() == [] and await service.performance() == []
        assert len(await service.pnl("week", 4)) == 4
    finally:
        await _close(service)


async def test_proxy_runs_calls_on_the_services_loop(settings, sim) -> None:
    service = await _service(settings, sim)
    loop = asyncio.get_running_loop()
    proxy = ServiceProxy(service, loop)
    result: dict[str, object] = {}

    def other_thread() -> None:
        async def use() -> None:
            result["balance"] = (await proxy.balance()).wallet
            result["leverage"] = await proxy.leverage_now()

        asyncio.run(use())

    try:
        thread = threading.Thread(target=other_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        assert result == {"balance": Decimal("10000"), "leverage": 10}
    finally:
        await _close(service)
