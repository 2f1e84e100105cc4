"""The live engine against the simulator on its own thread (stepped clock), over real sockets on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

import backtrader as bt
import pytest

from trader.events import Event, EventBus
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.base import FuturesStrategy

BTC = "BTC/USDT:USDT"
MINUTE = 60_000


class OneShot(FuturesStrategy):
    """Enters once at the first live bar at or after ``enter_at_ms``; records every order notification."""

    params = (("enter_at_ms", 0), ("side", 1), ("qty", 0.01), ("stop_move", 0.01), ("tp_move", 0.005),
              ("tp_qty", 0.005), ("breakeven", False))
    seen: ClassVar[list[tuple[str, str, float]]] = []

    def start(self) -> None:
        self.done = False
        self.entry: bt.Order | None = None
        self.stop_order: bt.Order | None = None
        type(self).seen = []

    def next(self) -> None:
        d = self.data
        if self.done or not getattr(d, "bar_is_live", True):
            return
        if bt.num2date(d.datetime[0]).timestamp() * 1000 + 1 < self.p.enter_at_ms:
            return
        self.done = True
        ref = d.close[0]
        side = self.p.side
        tps = [(ref * (1 + side * self.p.tp_move), self.p.tp_qty)] if self.p.tp_qty else []
        self.entry, self.stop_order, _ = self.open_position(d, side, self.p.qty, ref * (1 - side * self.p.stop_move),
                                                            tps)

    def notify_order(self, order: bt.Order) -> None:
        type(self).seen.append((order.info.get("tag") or "", order.getstatusname(), order.executed.size))
        if self.p.breakeven and order.info.get("tag") == "tp1" and order.status == order.Completed:
            # Move the stop to the entry price, as the reference strategy does after its first target.
            pos = self.getposition(self.data)
            self.cancel(self.stop_order)
            leave = self.sell if pos.size > 0 else self.buy
            self.stop_order = leave(data=self.data, size=abs(pos.size), exectype=bt.Order.Stop,
                                    price=round(self.entry.executed.price, 1), close_position=True,
                                    tag="stop_breakeven")


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC])) as s:
        yield s


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def client_factory(sim: SimulatorThread) -> Callable[[], ExchangeClient]:
    def make() -> ExchangeClient:
        return ExchangeClient(ClientOptions(
            api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"), api_key=DEFAULT_API_KEY,
            secret=DEFAULT_API_SECRET, backoff=BackoffPolicy(attempts=4, base_s=0.01, cap_s=0.05),
            resolve_delay_s=0.01))
    return make


class Recorder:
    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        bus.subscribe(self._add)

    def _add(self, e: Event) -> None:
        with self._lock:
            self.events.append(e)

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events]


def make_engine_for(sim: SimulatorThread, strategy: Any, params: dict[str, Any] | None = None, *,
                    sessions=None, history_bars: int = 60, **cfg: Any) -> tuple[LiveEngine, Recorder]:
    bus = EventBus()
    rec = Recorder(bus)
    config = EngineConfig(pairs=[BTC], strategy=strategy, strategy_params=params or {}, history_bars=history_bars,
                          stream=StreamOptions(heartbeat_s=5.0), **cfg)
    return LiveEngine(config, client_factory(sim), bus=bus, sessions=sessions), rec


def step_minutes(sim: SimulatorThread, engine: LiveEngine, n: int, *, timeout: float = 10.0) -> None:
    """Advance the replay minute by minute; after each, wait until the engine has taken the candle in."""
    for _ in range(n):
        before = engine.feeds[BTC].last_minute_ms
        sim.step(MINUTE)
        wait_until(lambda b=before: engine.feeds[BTC].last_minute_ms != b, timeout)
        engine.wait_idle(timeout)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.002)


def sim_state(sim: SimulatorThread) -> dict[str, Any]:
    return sim.call(lambda s: s.state())


def position_amt(sim: SimulatorThread) -> Decimal:
    rows = [p for p in sim_state(sim)["positions"] if p["symbol"] == "BTCUSDT"]
    return Decimal(rows[0]["amount"]) if rows else Decimal(0)
