"""The live strategy runs on the engine loop's thread (trader/live/runner.py): woken by bars, notes and commands,
its orders start out before the rest of its pass, and a long stretch of work does not hold the loop up."""

from __future__ import annotations

import threading
import time
from typing import Any

import backtrader as bt

from tests.live.conftest import BTC, make_engine_for, step_minutes
from trader.live.host import EngineHost
from trader.live.runner import StrategyRunner
from trader.strategy.base import FuturesStrategy


def _run_on_host(body: Any) -> tuple[EngineHost, StrategyRunner]:
    host = EngineHost("test-runner").start()
    runner = StrategyRunner(host.loop, slice_s=0.01)
    runner.launch(lambda: body(runner, host))
    return host, runner


def test_the_strategy_runs_on_the_loop_thread_and_waits_until_woken() -> None:
    seen: dict[str, Any] = {}
    entered = threading.Event()

    def body(runner: StrategyRunner, host: EngineHost) -> None:
        seen["thread"] = threading.get_ident()
        entered.set()
        seen["woken"] = runner.wait(None)
        seen["timed_out"] = not runner.wait(0.05)

    host, runner = _run_on_host(body)
    try:
        assert entered.wait(5)
        time.sleep(0.05)
        assert not runner.done.is_set()  # parked: the loop has the thread
        assert host.call(_identity(), 5) == seen["thread"]
        t0 = time.monotonic()
        runner.set()  # from another thread
        assert runner.done.wait(5)
        assert seen["woken"] and seen["timed_out"]
        assert time.monotonic() - t0 >= 0.04
    finally:
        host.stop()


def _pass_with_an_order(runner: StrategyRunner, host: EngineHost, order: list[str]) -> None:
    """Inside the strategy: a pass that sends an order (its send a task on the loop) and steps aside for it."""
    order.append("pass")

    async def send() -> None:
        order.append("send")
    host.loop.create_task(send())
    runner.pause()
    order.append("rest of the pass")


async def _identity() -> int:
    return threading.get_ident()


def test_pause_lets_what_is_ready_on_the_loop_run_first() -> None:
    order: list[str] = []

    def body(runner: StrategyRunner, host: EngineHost) -> None:
        async def send() -> None:
            order.append("send")
        host.loop.create_task(send())
        runner.pause()
        order.append("rest of the pass")

    host, runner = _run_on_host(body)
    try:
        assert runner.done.wait(5)
        assert order == ["send", "rest of the pass"]
    finally:
        host.stop()


def test_a_long_stretch_of_strategy_work_gives_the_loop_turns() -> None:
    ticks: list[float] = []

    def body(runner: StrategyRunner, host: EngineHost) -> None:
        async def beat() -> None:
            import asyncio
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0)
        task = host.loop.create_task(beat())
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            runner.slice()  # what the feed does for each preloaded bar
        task.cancel()

    host, runner = _run_on_host(body)
    try:
        assert runner.done.wait(5)
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert len(ticks) >= 10, len(ticks)
        assert max(gaps) < 0.1, max(gaps)  # 10 ms slices; never the whole 300 ms
    finally:
        host.stop()


def test_a_turn_that_holds_the_loop_too_long_is_counted_and_said(caplog) -> None:
    def body(runner: StrategyRunner, host: EngineHost) -> None:
        time.sleep(0.06)  # one turn, no slices: a slow next()

    host = EngineHost("test-runner").start()
    runner = StrategyRunner(host.loop, slow_s=0.05)
    try:
        with caplog.at_level("WARNING", logger="trader.live.runner"):
            runner.launch(lambda: body(runner, host))
            assert runner.done.wait(5)
            host.call(_identity(), 5)  # the turn's bookkeeping is done once the loop answers again
        assert runner.slow_turns == 1 and runner.longest_s >= 0.06
        assert "held the engine loop" in caplog.text
    finally:
        host.stop()


def test_a_failing_strategy_ends_its_run_and_the_loop_goes_on(caplog) -> None:
    def body(runner: StrategyRunner, host: EngineHost) -> None:
        raise ValueError("strategy bug")

    with caplog.at_level("ERROR", logger="trader.live.runner"):
        host, runner = _run_on_host(body)
        try:
            assert runner.done.wait(5)
            assert host.call(_identity(), 5)  # the loop still answers
            assert "strategy bug" in caplog.text  # caught and said by the runner, not lost in the loop's handler
        finally:
            host.stop()


class EnterAndLook(FuturesStrategy):
    """At the first live bar: a market entry with its stop; records where next() ran and whether the desk had
    begun sending the entry (its client id assigned, the write-ahead row in) before next() went on."""

    seen: dict[str, Any] = {}

    def start(self) -> None:
        self.done = False

    def next(self) -> None:
        d = self.data
        if self.done or not d.bar_is_live:
            return
        self.done = True
        type(self).seen["thread"] = threading.get_ident()
        entry, _stop, _tps = self.open_position(d, 1, 0.01, d.close[0] * 0.98, [])
        desk = self.broker.desk
        type(self).seen["sending"] = any(t.spec.ref == entry.ref for t in desk._by_cid.values())


def test_the_engine_runs_its_strategy_on_the_loop_and_an_order_starts_out_within_the_pass(sim, sessions) -> None:
    EnterAndLook.seen = {}
    engine, _rec = make_engine_for(sim, EnterAndLook, sessions=sessions)
    engine.start()
    try:
        step_minutes(sim, engine, 2)
        assert EnterAndLook.seen["thread"] == engine.host._thread.ident  # no strategy thread any more
        assert EnterAndLook.seen["sending"] is True
        assert engine.status().positions.get(BTC)
        assert [t.name for t in threading.enumerate() if t.name == "live-strategy"] == []
        assert engine.strategy is not None and engine.strategy.getposition(engine.feeds[BTC]).size == 0.01
        assert isinstance(engine.strategy.getposition(engine.feeds[BTC]), bt.Position)
    finally:
        engine.stop()


def test_settled_returns_once_the_pass_and_its_send_are_done() -> None:
    """What the candle stream awaits after releasing a pair's candle: the strategy's pass, and the first step of an
    order it sent, happen before the next candle is read."""
    order: list[str] = []

    def body(runner: StrategyRunner, host: EngineHost) -> None:
        while True:
            if not runner.wait(None):
                continue
            _pass_with_an_order(runner, host, order)
            if len(order) >= 6:
                return

    async def stream(runner: StrategyRunner) -> None:
        for n in range(2):
            order.append(f"candle {n}")
            runner.set()
            await runner.settled()
        await runner.settled()  # a strategy that has finished: returns at once

    host, runner = _run_on_host(body)
    try:
        time.sleep(0.05)  # the strategy is parked in wait
        host.call(stream(runner), 5)
        assert runner.done.wait(5)
        assert order == ["candle 0", "pass", "send", "rest of the pass",
                         "candle 1", "pass", "send", "rest of the pass"]
    finally:
        host.stop()


def test_settled_runs_the_woken_strategy_at_once_not_after_the_loops_next_turn() -> None:
    """The candle stream wakes the strategy and awaits ``settled``: the strategy's pass runs right there, ahead of
    callbacks already waiting for the loop's turn, and after a pause (its order's send) the loop resumes it."""
    order: list[str] = []
    parked = threading.Event()

    def body(runner: StrategyRunner, host: EngineHost) -> None:
        parked.set()
        runner.wait(None)
        _pass_with_an_order(runner, host, order)
        runner.wait(None)

    async def candle(runner: StrategyRunner) -> None:
        import asyncio
        asyncio.get_running_loop().call_soon(order.append, "waiting callback")
        runner.set()
        await runner.settled()
        order.append("settled")

    host, runner = _run_on_host(body)
    try:
        assert parked.wait(5)
        time.sleep(0.05)  # parked in its first wait
        host.call(candle(runner), 5)
        assert order == ["pass", "waiting callback", "send", "rest of the pass", "settled"], order
    finally:
        runner.set()
        assert runner.done.wait(5)
        host.stop()
