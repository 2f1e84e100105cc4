from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as server:
        yield server


def make_client(sim: SimulatorServer, **overrides) -> ExchangeClient:
    options = ClientOptions(
        api_url=sim.rest_url,
        ws_url=sim.ws_url.removesuffix("/ws"),
        api_key=DEFAULT_API_KEY,
        secret=DEFAULT_API_SECRET,
        backoff=BackoffPolicy(attempts=4, base_s=0.01, cap_s=0.05),
        resolve_delay_s=0.01,
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return ExchangeClient(options)


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[ExchangeClient]:
    c = make_client(sim)
    yield c
    await c.close()
