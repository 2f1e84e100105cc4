"""Backtests on hand-made candles whose signals are scripted, to make each risk rule act (or not) on purpose.

``Scripted`` is the reference strategy (its sizing, stops, targets and risk book) with the signal column read from
the candles: a bar whose volume is 1001 signals long, 999 short, anything else nothing. Its regime for the risk
rules is the ``regime_name`` parameter (the reference strategy itself reads none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import backtrader as bt
import numpy as np
import pandas as pd

from trader.backtest.runner import BacktestRequest, BacktestResult, run_backtest
from trader.strategy.base import Candles
from trader.strategy.reference import RsiBollingerStrategy

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
T0 = 1_746_057_600_000  # 2025-05-01T00:00Z, on an hour
BAR = 300_000  # 5m
LONG, SHORT = 1, -1
# Rules that would act in most scenarios, switched off so each test sees only its own rule.
QUIET: dict[str, Any] = {"volatility_percentile": 1.0, "budget_trades_per_day": 1e6}


class Scripted(RsiBollingerStrategy):
    params = (("regime_name", "unknown"),)
    indicator_lines: ClassVar[tuple[str, ...]] = RsiBollingerStrategy.indicator_lines

    @classmethod
    def compute_indicators(cls, candles: Candles, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        out = super().compute_indicators(candles, params)
        v = candles.volume
        out["signal"] = np.where(v == 1001.0, 1.0, np.where(v == 999.0, -1.0, 0.0))
        return out

    def risk_context(self, d: bt.DataBase) -> tuple[float, str]:
        vol, _ = super().risk_context(d)
        return vol, str(self.p.regime_name)


def frame(closes: np.ndarray, signals: Mapping[int, int] | None = None, spread: float = 0.001,
          ranges: np.ndarray | None = None) -> pd.DataFrame:
    """5m candles: open = previous close, high/low ``spread`` (or ``ranges[i]``) beyond the body; ``signals`` maps
    bar index -> side."""
    closes = np.asarray(closes, dtype="float64")
    opens = np.concatenate([[closes[0]], closes[:-1]])
    r = np.full(len(closes), spread) if ranges is None else np.asarray(ranges, dtype="float64")
    high = np.maximum(opens, closes) * (1 + r)
    low = np.minimum(opens, closes) * (1 - r)
    volume = np.full(len(closes), 500.0)
    for i, side in (signals or {}).items():
        volume[i] = 1001.0 if side > 0 else 999.0
    return pd.DataFrame({"timestamp": T0 + BAR * np.arange(len(closes), dtype="int64"), "open": opens,
                         "high": high, "low": low, "close": closes, "volume": volume})


def run(frames: Mapping[str, pd.DataFrame], *, wallet: float = 10_000.0, market_gate: Any = None,
        **params: Any) -> BacktestResult:
    return run_backtest(BacktestRequest(strategy=Scripted, pairs=tuple(frames), timeframe="5m", leverage=25,
                                        initial_wallet=wallet, candles=dict(frames), strategy_params=params,
                                        use_mark=False, use_funding=False, market_gate=market_gate))


def losing_longs(cycles: int, start: float = 100.0, warm: int = 40, gap: int = 40) -> tuple[np.ndarray, dict[int, int]]:
    """Flat warm-up, then ``cycles`` long signals each followed by a 2 % slide that stops the long out."""
    closes = [start] * warm
    signals = {}
    price = start
    for _ in range(cycles):
        signals[len(closes) - 1] = LONG
        for _k in range(10):
            price *= 0.998
            closes.append(price)
        closes += [price] * (gap - 10)
    return np.array(closes), signals


def counts(result: BacktestResult, rule: str) -> dict[str, int]:
    return result.risk_counts.get(rule, {})


def risk_share(result: BacktestResult, trade: Any) -> float:
    """The share of the equity before the entry that the trade would lose at a stop 0.5 % away (the reference's
    minimum stop, where these flat scenarios put it)."""
    i = int(np.searchsorted(result.equity_ms, trade.open_ms, side="left")) - 1
    return trade.qty * trade.entry_price * 0.005 / float(result.equity[max(i, 0)])
