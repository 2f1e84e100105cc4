"""The ledger's bookkeeping (a flush: a SQLite transaction of 1-8 ms) never runs ahead of a candle on its way to the
strategy: not while a candle waits at the gate for an operation whose end schedules the flush, not while a minute is
partly released, and for at most ``FLUSH_HOLD_MAX_S`` when the minute never completes."""

from __future__ import annotations

import asyncio

import pytest

import trader.live.desk as desk_module
from trader.live.desk import OrderDesk
from trader.live.ledger import Ledger

BTC = "BTC/USDT:USDT"


class LoggingLedger(Ledger):
    """Always has bookkeeping to write; each flush is an entry in the test's log of events."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    @property
    def dirty(self) -> bool:  # type: ignore[override]
        return True

    def flush(self) -> None:
        self.log.append("flush")


def _desk(log: list[str]) -> OrderDesk:
    return OrderDesk(None, [BTC], leverage=25, ledger=LoggingLedger(log))  # type: ignore[arg-type]


def test_a_candle_waiting_at_the_gate_goes_before_the_flush_its_operation_schedules() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        desk = _desk(log)
        pending = {"minute": True}
        desk.candles_pending = lambda: pending["minute"]

        async def stop_placement() -> None:  # an operation on the pair, still in flight at the candle
            await asyncio.sleep(0.01)
            log.append("op done")

        desk._spawn(BTC, stop_placement())
        await desk.settle(BTC, 1.0, 2.0)
        log.append("candle past the gate")
        await asyncio.sleep(0.02)  # the loop runs whatever was scheduled: the flush must still wait
        log.append("minute released")
        pending["minute"] = False
        desk.candles_done()
        await asyncio.sleep(0.01)
        return log

    assert asyncio.run(main()) == ["op done", "candle past the gate", "minute released", "flush"]


def test_without_candles_on_their_way_the_flush_runs_at_once() -> None:
    async def main() -> int:
        log: list[str] = []
        desk = _desk(log)
        desk.candles_pending = lambda: False
        desk._schedule_flush()
        await asyncio.sleep(0)
        return log.count("flush")

    assert asyncio.run(main()) == 1


def test_a_minute_that_never_completes_holds_the_flush_for_the_bound_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desk_module, "FLUSH_HOLD_MAX_S", 0.05)

    async def main() -> tuple[int, int]:
        log: list[str] = []
        desk = _desk(log)
        desk.candles_pending = lambda: True  # a pair whose candle never comes
        desk._schedule_flush()
        await asyncio.sleep(0.02)
        held = log.count("flush")
        await asyncio.sleep(0.1)
        return held, log.count("flush")

    assert asyncio.run(main()) == (0, 1)
