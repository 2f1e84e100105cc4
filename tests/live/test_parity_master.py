"""Parity for the decision engine: the master strategy on BTC, ETH and SOL replayed through the simulator (stepped
clock, live engine on a 5m feed built from the simulator's 1m candles, real sockets) makes the same trades as
``trader.backtest`` on the same candles — pairs, sides, entry and exit bars, exit reasons — with sizes and prices
within fill rounding, as the reference strategy's parity test (test_parity.py) requires; exits compared by their
5m bar (the live stop fills at its minute inside it).

The backtest starts exactly the live engine's preloaded history before the replay, so both warm up on the same bars
and start from a neutral fusion book; funding is off in both (the simulator's funding would move the wallet, and
with it a size, by a lot step)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from tests.live.conftest import BTC, MINUTE, client_factory, step_minutes
from trader.backtest.runner import BacktestRequest, run_backtest
from trader.events import EventBus
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.persistence.database import transaction
from trader.persistence.models import Trade
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.preflight import live_requirements

ETH, SOL = "ETH/USDT:USDT", "SOL/USDT:USDT"
PAIRS = [BTC, ETH, SOL]
START = 1747573200000  # 2025-05-18 13:00 UTC: the replay starts here
HOURS = 12  # to 2025-05-19 01:00: the backtest trades all three pairs in it (shorts and longs, stops and targets)
TF_MS = 300_000


@dataclass(frozen=True)
class T:
    pair: str
    side: str
    open_ms: int
    close_ms: int
    qty: float
    entry: float
    exit: float
    reason: str


def _backtest(history: int) -> list[T]:
    r = run_backtest(BacktestRequest(strategy="master", pairs=tuple(PAIRS), timeframe="5m",
                                     start_ms=START - history * TF_MS, end_ms=START + HOURS * 3_600_000,
                                     use_funding=False))
    return sorted((T(t.pair, t.side, t.open_ms, t.close_ms, t.qty, t.entry_price, t.exit_price, t.exit_reason)
                   for t in r.trades if t.exit_reason != "end_of_run"), key=lambda t: (t.open_ms, t.pair))


def _live(sim: SimulatorThread, sessions, history: int) -> tuple[list[T], LiveEngine]:
    engine = LiveEngine(EngineConfig(pairs=PAIRS, strategy="master", timeframe="5m", history_bars=history,
                                     window=history, stream=StreamOptions(heartbeat_s=5.0)),
                        client_factory(sim), bus=EventBus(), sessions=sessions)
    engine.start()
    try:
        step_minutes(sim, engine, HOURS * 60, timeout=20.0)
    finally:
        engine.stop()
    out = []
    with transaction(sessions) as s:
        for t in s.scalars(select(Trade).where(Trade.status == "closed").order_by(Trade.id)):
            # the ledger's open is the fill's minute; the backtest's is the decision bar's close (the same instant)
            out.append(T(t.pair, t.side, int(t.open_date.timestamp() * 1000) // MINUTE * MINUTE,
                         int(t.close_date.timestamp() * 1000) // MINUTE * MINUTE, float(t.amount),
                         float(t.open_rate), float(t.close_rate), t.exit_reason or ""))
    return sorted(out, key=lambda t: (t.open_ms, t.pair)), engine


def _shape(trades: list[T]) -> list[tuple[str, str, int, int, str]]:
    # Exits by their 5m bar: the backtest on a 5m feed fills an exchange stop inside the bar and stamps the bar's
    # open; the simulator fills it at the minute the price got there, inside that same bar.
    return [(t.pair, t.side, t.open_ms, t.close_ms // TF_MS * TF_MS, t.reason) for t in trades]


@pytest.mark.slow
def test_master_on_three_pairs_makes_the_backtest_trades(sessions) -> None:
    history = live_requirements("master", None, "5m")["history_bars"]
    expected = _backtest(history)
    assert len({t.pair for t in expected}) == 3 and len(expected) >= 5, _shape(expected)
    assert all(t.open_ms >= START for t in expected)  # nothing decided before the replay starts
    t0 = time.perf_counter()
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS, start_ms=START)) as sim:
        got, engine = _live(sim, sessions, history)
    print(f"\nmaster parity: {len(expected)} backtest trades, {len(got)} live, replay {time.perf_counter() - t0:.0f}s")
    for a, b in zip(expected, got, strict=False):
        print(f"  bt   {a}\n  live {b}")
    assert not engine.errors and not engine.desk.errors
    assert _shape(got) == _shape(expected)
    for a, b in zip(expected, got, strict=True):
        assert b.qty == pytest.approx(a.qty, rel=0.01, abs=0.0011), (a, b)  # a lot step at most
        assert b.entry == pytest.approx(a.entry, rel=5e-4), (a, b)
        assert b.exit == pytest.approx(a.exit, rel=5e-4), (a, b)
