"""The hook the market-side rules plug into (liquidity tiers, exchange maintenance windows: trader/risk/liquidity.py
and trader/risk/maintenance.py, built beside this package).

A gate is any object with ``entry(pair, at_ms) -> MarketVerdict``; the broker carries it (``broker.market_gate``:
the live engine sets it on its LiveBroker, the backtest runner on its FuturesBroker) and ``RiskBook`` asks it at
every entry decision. ``factor`` multiplies the entry's size (mild illiquidity: 0.5); 0 refuses the entry
(moderate illiquidity: reduce-only; a maintenance window). The verdict's rule and values travel with the decision
like every other rule's: an event live, a count in the backtest, a line in /risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class MarketVerdict:
    factor: float = 1.0  # size multiplier; 0: no new entry
    rule: str = ""  # e.g. "liquidity", "maintenance"
    values: dict[str, float | str] = field(default_factory=dict)


ALLOW = MarketVerdict()


class MarketGate(Protocol):
    def entry(self, pair: str, at_ms: int) -> MarketVerdict: ...


@dataclass(frozen=True)
class CombinedGate:
    """Several gates as one: the smallest factor wins (a block anywhere blocks), naming its rule."""

    gates: Sequence[MarketGate]

    def entry(self, pair: str, at_ms: int) -> MarketVerdict:
        worst = ALLOW
        for gate in self.gates:
            verdict = gate.entry(pair, at_ms)
            if verdict.factor < worst.factor:
                worst = verdict
        return worst
