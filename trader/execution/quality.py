"""Execution quality: slippage against the decision price on every fill, and one record per execution.

Slippage is in basis points of the decision price, positive when the fill was worse than the decision (a buy
above it, a sell below it). The decision price is the price the order was decided on: the close of the bar a
strategy decided on (or the last price for a forced entry), the trigger of a stop or target, the mid of the book
for an order the desk decides itself (a staged close). Time to fill runs from the order leaving the desk to its
last fill, in wall-clock milliseconds (what the account experiences, also against an accelerated simulator);
conditional orders (stops, targets) have none: they wait for the price by design.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


def slippage_bp(side: str, decision: Decimal | None, price: Decimal) -> float | None:
    if decision is None or decision <= 0:
        return None
    signed = (price - decision) if side == "buy" else (decision - price)
    return float(signed / decision * 10_000)


@dataclass
class ExecutionTape:
    """The fills of one execution (an order, or all slices of a sliced one)."""

    pair: str
    side: str  # buy | sell
    purpose: str  # entry | exit | stop | take_profit | ...
    decision_price: Decimal | None
    style: str = "market"  # market | post_only | conditional
    slices: int = 1
    planned: Decimal | None = None
    trade_id: int | None = None
    started: float = field(default_factory=time.monotonic)
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    maker_qty: Decimal = ZERO
    last_fill: float | None = None
    fallback: bool = False  # what a post-only slice left went at market
    client_ids: list[str] = field(default_factory=list)
    recorded: bool = False

    def fill(self, qty: Decimal, price: Decimal, maker: bool, now: float | None = None) -> float | None:
        """Book one fill; returns its slippage in basis points (None without a decision price)."""
        self.filled += qty
        self.cost += qty * price
        if maker:
            self.maker_qty += qty
        self.last_fill = time.monotonic() if now is None else now
        return slippage_bp(self.side, self.decision_price, price)

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled > 0 else None

    @property
    def time_to_fill_ms(self) -> int | None:
        if self.style == "conditional" or self.last_fill is None:
            return None
        return int((self.last_fill - self.started) * 1000)

    def record(self) -> ExecutionRecord | None:
        """The finished execution (None when nothing filled or it was recorded already)."""
        if self.recorded or self.filled <= 0:
            return None
        self.recorded = True
        avg = self.average
        assert avg is not None
        return ExecutionRecord(
            time_ms=self.started_ms, pair=self.pair, side=self.side, purpose=self.purpose, style=self.style,
            slices=self.slices, planned=self.planned, filled=self.filled, decision_price=self.decision_price,
            average=avg, slippage_bp=slippage_bp(self.side, self.decision_price, avg),
            maker_share=float(self.maker_qty / self.filled), time_to_fill_ms=self.time_to_fill_ms,
            fallback=self.fallback, trade_id=self.trade_id, client_ids=tuple(self.client_ids))


@dataclass(frozen=True)
class ExecutionRecord:
    time_ms: int
    pair: str
    side: str
    purpose: str
    style: str
    slices: int
    planned: Decimal | None
    filled: Decimal
    decision_price: Decimal | None
    average: Decimal
    slippage_bp: float | None
    maker_share: float
    time_to_fill_ms: int | None
    fallback: bool
    trade_id: int | None
    client_ids: tuple[str, ...]


@dataclass(frozen=True)
class PairQuality:
    """/execution's line for one pair."""

    pair: str
    executions: int
    notional: float
    slippage_bp: float | None  # notional-weighted mean over executions with a decision price
    worst_slippage_bp: float | None
    time_to_fill_ms: float | None  # median over executions that have one
    maker_share: float  # of the filled quantity
    sliced: int
    fallbacks: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(rows: Iterable[Any]) -> list[PairQuality]:
    """Per pair, from execution rows (``ExecutionRecord`` or the ledger's ``Execution``), busiest first."""
    by_pair: dict[str, list[Any]] = {}
    for r in rows:
        by_pair.setdefault(r.pair, []).append(r)
    out = []
    for pair, items in by_pair.items():
        notional = sum(float(r.filled) * float(r.average) for r in items)
        slipped = [(float(r.filled) * float(r.average), float(r.slippage_bp)) for r in items
                   if r.slippage_bp is not None]
        weight = sum(w for w, _ in slipped)
        mean = sum(w * s for w, s in slipped) / weight if weight > 0 else None
        worst = max((s for _, s in slipped), default=None)
        times = sorted(float(r.time_to_fill_ms) for r in items if r.time_to_fill_ms is not None)
        median = (times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
                  ) if times else None
        qty = sum(float(r.filled) for r in items)
        maker = sum(float(r.filled) * float(r.maker_share) for r in items)
        out.append(PairQuality(pair, len(items), notional, mean, worst, median, maker / qty if qty > 0 else 0.0,
                               sum(1 for r in items if int(r.slices) > 1), sum(1 for r in items if r.fallback)))
    return sorted(out, key=lambda q: -q.notional)
