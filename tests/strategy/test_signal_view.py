"""/signals' view of a running managed strategy: each single setup and the master report readiness, the last
graded signal, recent chart patterns (with completion bars, none from the future) and, with a model, its newest
prediction; taken at the end of a backtest on the shipped data, the way LiveEngine.strategy_view takes it."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest

from trader.analysis.patterns import DIRECTION
from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.strategy.managed import bt_ms
from trader.strategy.reference import STRATEGIES

WEEKS = parse_timerange("20250515-20250603")


def _captured(name: str) -> tuple[dict[str, Any], float, int]:
    base = STRATEGIES[name]

    class Capture(base):  # type: ignore[misc, valid-type]
        seen: ClassVar[dict[str, Any]] = {}

        def stop(self) -> None:
            t0 = time.perf_counter()
            type(self).seen = {"status": self.status(), "ms": (time.perf_counter() - t0) * 1000,
                               "last_close": max(bt_ms(d.datetime[0]) for d in self.datas) + 300_000}
            super().stop()

    Capture.__name__ = base.__name__
    run_backtest(BacktestRequest(strategy=Capture, pairs=("BTC", "ETH", "SOL"), timeframe="5m",
                                 start_ms=WEEKS[0], end_ms=WEEKS[1], use_funding=False))
    return Capture.seen["status"], Capture.seen["ms"], Capture.seen["last_close"]


@pytest.mark.parametrize("name", ["oscillation", "breakout", "trend", "master"])
def test_every_managed_strategy_has_a_view(name: str) -> None:
    status, ms, last_close = _captured(name)
    print(f"\n{name}: status() {ms:.1f} ms for 3 pairs")
    pairs = status["pairs"]
    assert set(pairs) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
    signals = [row["last_signal"] for row in pairs.values() if row["last_signal"]]
    assert signals, "three weeks of three pairs give a graded signal"
    for row in pairs.values():
        assert row["ready"] is True and row["ml"] is None  # no model in this process
        if name == "master":
            assert row["regime"] in ("ranging", "trending", "volatile", "breakout", "unknown")
        else:
            assert row["regime"] is None and row["route"] == name
        for sig in filter(None, [row["last_signal"]]):
            assert sig["grade"] in (1, 2) and sig["setup"] in ("oscillation", "breakout", "trend")
            assert sig["at_ms"] <= last_close
        for p in row["patterns"]:
            assert p["kind"] in DIRECTION and p["timeframe"] in ("15m", "1h", "4h")
            assert p["completion_ms"] <= last_close  # known by the newest bar, never later
            assert last_close - p["completion_ms"] <= 12 * {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000}[
                p["timeframe"]]
    assert any(row["patterns"] for row in pairs.values()), "recent patterns on one of three pairs"
    assert (status["fusion"] != []) == (name == "master")
    assert ms < 500
