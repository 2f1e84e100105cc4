"""Stress mode: replay a scripted flash crash through the same engine and strategy.

The crash is written into real candles: from ``at_ms`` prices are scaled down linearly to ``1 − depth`` over
``fall_bars`` bars, stay there for ``hold_bars``, then recover ``recovery`` of the drop over ``recover_bars`` and
keep that level. Bar-to-bar scaling leaves gaps between a bar's open and the previous close, which is how real
cascades look (2025-10-10: XRP 1h low 53 % under its open) and what tests gap-through fills. Mark price is taken
equal to last during the scenario: stored mark candles would contradict the rewritten prices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trader.backtest.data_prep import load_pair_candles
from trader.backtest.runner import BacktestRequest, BacktestResult, run_backtest
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir


@dataclass(frozen=True)
class FlashCrash:
    at_ms: int | None = None  # None: the middle of the run
    depth: float = 0.30
    fall_bars: int = 5
    hold_bars: int = 3
    recover_bars: int = 30
    recovery: float = 0.6  # share of the drop won back
    wick: float = 0.05  # extra low-wick below the bottom on the first bottom bar, as a fraction of price

    def factors(self, ts_ms: np.ndarray) -> np.ndarray:
        n = len(ts_ms)
        f = np.ones(n)
        if not n:
            return f
        start = int(np.searchsorted(ts_ms, self.at_ms)) if self.at_ms is not None else n // 2
        bottom = 1.0 - self.depth
        end_level = bottom + self.depth * self.recovery
        path = np.concatenate([
            np.linspace(1.0, bottom, self.fall_bars + 1)[1:],
            np.full(self.hold_bars, bottom),
            np.linspace(bottom, end_level, self.recover_bars + 1)[1:],
        ])
        k = min(len(path), n - start)
        f[start:start + k] = path[:k]
        f[start + k:] = end_level
        return f

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        ts = df["timestamp"].to_numpy(dtype="int64")
        f = self.factors(ts)
        out = df.copy()
        for col in ("open", "high", "low", "close"):
            out[col] = df[col].to_numpy(dtype="float64") * f
        start = int(np.searchsorted(ts, self.at_ms)) if self.at_ms is not None else len(ts) // 2
        wick_at = start + self.fall_bars - 1
        if 0 <= wick_at < len(out):
            out.loc[wick_at, "low"] = out.loc[wick_at, "low"] * (1.0 - self.wick)
        return out


@dataclass
class StressResult:
    scenario: FlashCrash
    baseline: BacktestResult
    stressed: BacktestResult
    engine: str = "backtrader"


def _runner(request: BacktestRequest, engine: str) -> tuple[Callable[[BacktestRequest], BacktestResult], str]:
    """Backtrader, or the screening engine (trade-for-trade equal, trader/screening) when asked and available."""
    if engine not in ("backtrader", "screening", "auto"):
        raise ValueError(f"unknown engine {engine!r}; known: auto, screening, backtrader")
    if engine == "backtrader":
        return run_backtest, "backtrader"
    from trader.screening.engine import run_screening, twin_for

    twin, why = twin_for(request)
    if twin is None:
        if engine == "screening":
            raise ValueError(f"no screening engine for this run: {why}")
        return run_backtest, "backtrader"
    return run_screening, "screening"


def stress_test(request: BacktestRequest, scenario: FlashCrash | None = None, engine: str = "backtrader",
                ) -> StressResult:
    """Run ``request`` as is and with ``scenario`` applied to every pair (same engine, strategy, parameters).
    ``engine``: "backtrader", "screening" (refused without a twin) or "auto" (screening where it has a twin)."""
    scenario = scenario or FlashCrash()
    data_dir = request.data_dir or bundled_data_dir()
    pairs = tuple(normalize_pair(p) for p in request.pairs)
    if request.candles is not None:
        frames = {p: request.candles[p].reset_index(drop=True) for p in pairs}
    else:
        frames = {p: load_pair_candles(data_dir, p, request.timeframe, request.start_ms, request.end_ms)
                  for p in pairs}
    base_req = replace(request, pairs=pairs, candles=frames, use_mark=False)
    crashed = {p: scenario.apply(df) for p, df in frames.items()}
    run, used = _runner(base_req, engine)
    baseline = run(base_req)
    stressed = run(replace(base_req, candles=crashed))
    return StressResult(scenario, baseline, stressed, used)
