"""What an optimisation maximises: a score computed from a backtest's ``Metrics`` (higher is better).

Optuna studies run with ``direction="maximize"`` on these scores. A score is always finite: optuna marks a NaN
objective as a failed trial (it would then never be compared), and an infinite Sortino (no losing day) would win
every comparison. So undefined ratios and runs with fewer than ``min_trades`` trades score ``PENALTY``, and
everything is clipped to ±``CAP``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from trader.performance.metrics import Metrics

PENALTY = -100.0
CAP = 100.0


def _ratio(value: float) -> float:
    if math.isnan(value):
        return PENALTY
    return max(-CAP, min(CAP, value))


@dataclass(frozen=True)
class Loss:
    name: str
    description: str
    min_trades: int = 1
    drawdown_penalty: float = 1.0

    def score(self, m: Metrics) -> float:
        if m.trades < self.min_trades:
            return PENALTY
        return _SCORERS[self.name](m, self)


def _profit_drawdown(m: Metrics, loss: Loss) -> float:
    # Both are fractions of the starting wallet: +12 % return with a 10 % drawdown and penalty 1 scores 0.02.
    dd = abs(m.max_drawdown) if not math.isnan(m.max_drawdown) else 1.0
    return _ratio(m.total_return - loss.drawdown_penalty * dd)


_SCORERS: dict[str, Callable[[Metrics, Loss], float]] = {
    "sharpe": lambda m, _l: _ratio(m.sharpe),
    "sortino": lambda m, _l: _ratio(m.sortino),
    "calmar": lambda m, _l: _ratio(m.calmar),
    "profit_drawdown": _profit_drawdown,
}

LOSS_DESCRIPTIONS: dict[str, str] = {
    "sharpe": "annualised Sharpe ratio of daily returns",
    "sortino": "annualised Sortino ratio of daily returns",
    "calmar": "annual return / |max drawdown|",
    "profit_drawdown": "total return − penalty × |max drawdown| (fractions of the starting wallet)",
}


def make_loss(name: str, min_trades: int = 1, drawdown_penalty: float = 1.0) -> Loss:
    if name not in _SCORERS:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(_SCORERS)}")
    if min_trades < 0:
        raise ValueError("min_trades must be ≥ 0")
    if drawdown_penalty < 0:
        raise ValueError("drawdown_penalty must be ≥ 0")
    return Loss(name, LOSS_DESCRIPTIONS[name], min_trades, drawdown_penalty)
