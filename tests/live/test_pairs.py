"""Two pairs in one engine: each feed gets its own bars, and entries on both get their own stops."""

from __future__ import annotations

import time
from decimal import Decimal

from tests.live.conftest import MINUTE, client_factory
from trader.events import EventBus
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.base import FuturesStrategy

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


class BothOnce(FuturesStrategy):
    params = (("qty", {"BTC/USDT:USDT": 0.01, "ETH/USDT:USDT": 0.1}),)

    def start(self) -> None:
        self.entered: set[str] = set()
        self.bars: dict[str, list[float]] = {d._name: [] for d in self.datas}

    def next(self) -> None:
        for d in self.datas:
            if not d.bar_is_live:
                continue
            self.bars[d._name].append(d.datetime[0])
            if d._name in self.entered:
                continue
            self.entered.add(d._name)
            ref = d.close[0]
            self.open_position(d, 1, self.p.qty[d._name], ref * 0.98)


def test_two_pairs_trade_side_by_side() -> None:
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as sim:
        engine = LiveEngine(EngineConfig(pairs=PAIRS, strategy=BothOnce, history_bars=30,
                                         stream=StreamOptions(heartbeat_s=5.0)), client_factory(sim), bus=EventBus())
        engine.start()
        try:
            for _ in range(3):
                marks = {p: f.last_minute_ms for p, f in engine.feeds.items()}
                sim.step(MINUTE)
                deadline = time.monotonic() + 10
                while any(engine.feeds[p].last_minute_ms == marks[p] for p in PAIRS):
                    assert time.monotonic() < deadline
                    time.sleep(0.002)
                engine.wait_idle(10)
            state = sim.call(lambda s: s.state())
            amounts = {p["symbol"]: Decimal(p["amount"]) for p in state["positions"]}
            assert amounts == {"BTCUSDT": Decimal("0.01"), "ETHUSDT": Decimal("0.1")}
            stops = sorted(a["symbol"] for a in state["open_algo_orders"] if a["orderType"] == "STOP_MARKET")
            assert stops == ["BTCUSDT", "ETHUSDT"]
            strat = engine.strategy
            for pair in PAIRS:
                assert engine.broker.getposition(engine.feeds[pair]).size > 0
                stamps = strat.bars[pair]
                assert len(stamps) == 3 and stamps == sorted(set(stamps))  # each live bar once, in order
            assert engine.status().bars == {p: 30 + 3 for p in PAIRS}
        finally:
            engine.stop()
