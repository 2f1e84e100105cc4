"""Simulator fixtures: a fresh stepped-clock simulator per test on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trader.sim import SimConfig, SimulatorThread
from trader.sim.client import make_client

START = 1746835200000 + 60_000  # 2025-05-10 00:01 UTC, one minute after a funding settlement
BTC = "BTC/USDT:USDT"


def sim_config(**kw: object) -> SimConfig:
    base: dict[str, object] = {"port": 0, "clock_mode": "stepped", "start_ms": START}
    base.update(kw)
    return SimConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(sim_config()) as s:
        yield s


@pytest.fixture
def ex(sim: SimulatorThread):
    client = make_client(sim.rest_url)
    client.load_markets()
    return client


def hold_price(sim: SimulatorThread, price: float, symbol: str = "BTCUSDT", step_ms: int = 1000) -> None:
    """Move ``symbol`` to ``price`` (contract and mark) and let the clock run past the move."""
    sim.call(lambda s: s.set_price(symbol, price))
    sim.step(step_ms)
