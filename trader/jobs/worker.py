"""What runs inside the worker process: one backtest, its progress and its export, sent back over a pipe.

This module is what a spawned child imports, so it pulls in the backtest engine and nothing of the service
(no database, no exchange client): the child starts faster and cannot touch live state.

Messages (``(kind, fields)`` tuples): ``("progress", {state, bars_done, bars_total})`` at most every
``PROGRESS_EVERY_S``; then exactly one of ``("done", {result, summary, result_dir})`` or
``("failed", {error, missing})``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 0.25
TICK_MASK = 63  # look at the clock every 64 bars: cheap next to a strategy's next()


@dataclass(frozen=True)
class BacktestJobSpec:
    """Everything the worker needs, picklable (it crosses a spawn boundary)."""

    run_id: str
    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    start_ms: int | None
    end_ms: int | None
    timerange: str
    leverage: int
    initial_wallet: float
    data_dir: str
    results_dir: str
    # The config's risk section as strategy parameters (trader.risk.limits), so /backtest sizes like live does.
    strategy_params: tuple[tuple[str, Any], ...] = ()
    # The config's liquidity tiers (trader.risk.liquidity.LiquidityRules), applied from candle volume; None: not.
    liquidity: Any = None


class _Progress:
    """Bars done = what the runner last reported (exact at segment ends) + bars counted since by the strategy."""

    def __init__(self, send: Callable[..., None], total: int):
        self.send = send
        self.total = total
        self.base = 0
        self.in_segment = 0
        self.last = 0.0

    def runner(self, fraction: float, _message: str) -> None:
        self.base = round(fraction * self.total)
        self.in_segment = 0
        self.emit()

    def tick(self) -> None:
        self.in_segment += 1
        if not self.in_segment & TICK_MASK and time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.emit()

    def emit(self) -> None:
        self.last = time.monotonic()
        self.send("progress", state="running", bars_done=min(self.total, self.base + self.in_segment),
                  bars_total=self.total)


def _counting(cls: type, tick: Callable[[], None]) -> type:
    """The strategy unchanged, plus a bar counter: the runner itself reports only every 65536 bars."""

    class Counting(cls):  # type: ignore[misc, valid-type]
        def next(self) -> None:
            super().next()
            tick()

    Counting.__name__ = cls.__name__  # the result and the stored run name the real strategy
    Counting.__qualname__ = cls.__qualname__
    return Counting


def run(spec: BacktestJobSpec, conn: Any) -> None:
    """Process entry point (spawn target)."""
    try:
        os.nice(10)  # the live engine and the bot share these cores: they come first
    except (AttributeError, OSError):
        pass

    def send(kind: str, **fields: Any) -> None:
        conn.send((kind, fields))

    try:
        send("progress", state="loading", bars_done=0, bars_total=0)
        from trader.backtest import data_prep
        from trader.backtest.export import result_summary, write_export
        from trader.backtest.runner import BacktestRequest, resolve_strategy, run_backtest

        cls = resolve_strategy(spec.strategy)
        data_dir = Path(spec.data_dir)
        frames = {p: data_prep.load_pair_candles(data_dir, p, spec.timeframe, spec.start_ms, spec.end_ms)
                  for p in spec.pairs}
        total = len(data_prep.align(frames))
        if not total:
            raise ValueError("no candles in the requested range for all pairs together")
        progress = _Progress(send, total)
        # The frames go in as candles so the runner does not read the files a second time.
        request = BacktestRequest(strategy=_counting(cls, progress.tick), pairs=spec.pairs, timeframe=spec.timeframe,
                                  start_ms=spec.start_ms, end_ms=spec.end_ms, leverage=spec.leverage,
                                  initial_wallet=spec.initial_wallet, data_dir=data_dir, candles=frames,
                                  strategy_params=dict(spec.strategy_params), liquidity=spec.liquidity)
        result = replace(run_backtest(request, progress=progress.runner), run_id=spec.run_id)
        extra = {"timerange": spec.timerange}
        out = write_export(result, spec.results_dir, extra)
        send("done", result=result, summary=result_summary(result, extra), result_dir=str(out.resolve()))
    except Exception as exc:  # the parent marks the run failed with this text
        send("failed", error=f"{type(exc).__name__}: {exc}", missing=isinstance(exc, FileNotFoundError))
    finally:
        conn.close()
