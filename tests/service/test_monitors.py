"""Latency tiers and account monitors acting on a real (simulated) account."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.exchange.conftest import make_client
from trader.bootstrap import open_core
from trader.config.loader import load_settings
from trader.events import EventBus, LatencyTierChanged, LiquidationWarning, RiskAction
from trader.exchange.latency import LatencyMonitor
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.persistence.database import transaction
from trader.persistence.models import FundingPayment, Trade
from trader.service.monitors import AccountMonitor, LatencyGuard
from trader.service.service import TradingService
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
HOUR = 3_600_000


@pytest.fixture
async def sim():
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as server:
        yield server


@pytest.fixture
async def setup(sim, write_config, tmp_path):
    settings = load_settings(write_config({"user_data_dir": str(tmp_path / "ud"), "leverage": 10}), environ={})
    core = open_core(settings, console_logging=False, file_logging=False)
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    client = make_client(sim)
    await client.initialize(PAIRS, 10)
    service = TradingService(settings, core, client, bus)
    yield sim, service, bus, events
    await client.close()
    core.close()


async def _open(service, pair: str, amount: str, tid: int) -> None:
    await service.client.create_order(OrderRequest(pair, "buy", "market", client_order_id(tid, "entry"),
                                                   amount=Decimal(amount)))


@pytest.mark.parametrize("action", ["flatten", "block_entries"])
async def test_latency_emergency_acts_and_recovery_resumes(setup, action: str) -> None:
    sim, service, bus, events = setup
    guard = LatencyGuard(service, bus, asyncio.get_running_loop(), action)
    service.client.latency = LatencyMonitor(safe_ms=100, no_entries_ms=500, emergency_ms=1000, hold_s=0.3,
                                            window=3, on_tier_change=guard.on_tier_change)
    await _open(service, "ETH/USDT:USDT", "0.5", 1)
    sim.set_faults({"latency_ms": 1100})
    for _ in range(2):
        await service.client.fetch_balance()
    sim.set_faults({"latency_ms": 0})
    await asyncio.sleep(0.05)  # the guard's work is scheduled on this loop
    for _ in range(50):
        if "emergency_flatten" not in guard.actions or service._flatten_task is None or service._flatten_task.done():
            break
        await asyncio.sleep(0.05)
    if service._flatten_task is not None:
        await service._flatten_task
    assert guard.actions[:3] == ["size_halved", "entries_blocked",
                                 f"emergency_{'flatten' if action == 'flatten' else 'block'}"]
    positions = await service.client.fetch_positions()
    assert (positions == []) is (action == "flatten")
    assert any(isinstance(e, LatencyTierChanged) and e.new == "emergency" for e in events)
    # Fast answers for longer than the hold time bring the tier down and entries back.
    for _ in range(8):
        await service.client.fetch_balance()
    await asyncio.sleep(0.35)
    for _ in range(8):
        await service.client.fetch_balance()
    await asyncio.sleep(0.05)
    assert service.client.latency.tier.name == "NORMAL"
    assert guard.actions[-2:] == ["size_restored", "entries_resumed"] and guard.risk_scale == 1.0
    assert any(isinstance(e, RiskAction) and e.action == "entries_resumed" for e in events)


async def test_liquidation_warning_once_per_quiet_period(setup) -> None:
    sim, service, bus, events = setup
    await _open(service, "ETH/USDT:USDT", "40", 1)  # ≈ 72,000 USDT at 10x on 10,000: liquidation ≈ 13 % away
    monitor = AccountMonitor(service, bus, warn_distance=Decimal("0.2"))
    first = await monitor.check_liquidation()
    assert [w.pair for w in first] == ["ETH/USDT:USDT"] and Decimal("0.05") < first[0].distance < Decimal("0.2")
    assert await monitor.check_liquidation() == []  # quiet period
    assert sum(isinstance(e, LiquidationWarning) for e in events) == 1
    calm = AccountMonitor(service, bus, warn_distance=Decimal("0.05"))
    assert await calm.check_liquidation() == []


async def test_funding_settlements_are_stored_once_and_charged_to_the_trade(setup) -> None:
    sim, service, bus, events = setup
    await _open(service, "BTC/USDT:USDT", "0.05", 1)
    with transaction(service.core.sessions) as session:
        session.add(Trade(pair="BTC/USDT:USDT", side="long", leverage=10, amount=Decimal("0.05"),
                          amount_open=Decimal("0.05"), stake=Decimal("470"), open_rate=Decimal("94000"),
                          open_date=dt.datetime.now(dt.timezone.utc)))
    sim.step(9 * HOUR)  # at least one funding settlement passes
    monitor = AccountMonitor(service, bus)
    added = await monitor.sync_funding()
    assert added >= 1
    assert await monitor.sync_funding() == 0  # the same settlements are not stored twice
    with service.core.sessions() as session:
        payments = list(session.scalars(select(FundingPayment)))
        trade = session.scalar(select(Trade))
    assert len(payments) == added and all(p.trade_id == trade.id for p in payments)
    assert trade.funding == sum((p.amount for p in payments), Decimal(0)) and trade.funding != 0


async def test_safe_mode_halves_new_entries_without_blocking_them(setup) -> None:
    sim, service, bus, events = setup
    guard = LatencyGuard(service, bus, asyncio.get_running_loop())
    service.client.latency = LatencyMonitor(safe_ms=100, no_entries_ms=500, emergency_ms=1000, hold_s=60,
                                            window=3, on_tier_change=guard.on_tier_change)
    sim.set_faults({"latency_ms": 200})
    for _ in range(2):
        await service.client.fetch_balance()
    sim.set_faults({"latency_ms": 0})
    await asyncio.sleep(0.05)
    assert service.client.latency.tier.name == "SAFE"
    assert guard.actions == ["size_halved"] and guard.risk_scale == 0.5 and not guard.blocked
