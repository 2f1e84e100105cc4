"""The execution optimiser: how one order goes out, decided from the book and the order's urgency.

- Urgent orders (exits, stops, targets, emergency closes, and entries a person forced) go at market, whole:
  waiting costs more than the spread when the point is to be out (or in) now.
- A non-urgent entry rests as a post-only limit (GTX) at its own side's best price when the spread is at least
  ``maker_min_spread``: it earns the spread and the maker fee instead of paying both, and falls back to market for
  whatever has not filled within the time limit.
- An order larger than ``depth_share`` of the visible depth on the side it takes from (within the liquidity
  band) is split into slices no larger than that share, up to ``max_slices``; above ``large_account_equity`` the
  share is ``large_account_depth_share`` (risk-rules.md: large accounts split large orders). Slices never go
  below the exchange's minimum notional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

Style = Literal["market", "post_only"]


@dataclass(frozen=True)
class ExecutionRules:
    maker_min_spread: float = 0.0002
    slice_depth_share: float = 0.25
    large_account_equity: float = 10_000.0
    large_account_depth_share: float = 0.05
    max_slices: int = 8
    slice_wait_s: float = 3.0
    time_limit_s: float = 30.0
    depth_band: float = 0.005  # the liquidity band: depth counted within ±band of mid

    @classmethod
    def from_settings(cls, settings: Any) -> ExecutionRules:
        e = settings.execution
        return cls(maker_min_spread=e.maker_min_spread, slice_depth_share=e.slice_depth_share,
                   large_account_equity=e.large_account_equity, large_account_depth_share=e.large_account_depth_share,
                   max_slices=e.max_slices, slice_wait_s=e.slice_wait_seconds, time_limit_s=e.time_limit_seconds,
                   depth_band=settings.risk.liquidity.depth_band)

    def depth_share(self, wallet: float) -> float:
        return self.large_account_depth_share if wallet > self.large_account_equity else self.slice_depth_share


@dataclass(frozen=True)
class BookTop:
    """What the optimiser reads of a book for one side: prices at the touch and the depth an order would take."""

    bid: Decimal
    ask: Decimal
    bid_depth: Decimal  # base quantity resting within the band below mid
    ask_depth: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> float:
        return float((self.ask - self.bid) / self.mid) if self.mid > 0 else math.inf

    def taking(self, side: str) -> Decimal:
        """Depth a ``side`` order takes from: a buy takes asks, a sell takes bids."""
        return self.ask_depth if side == "buy" else self.bid_depth

    def resting_price(self, side: str) -> Decimal:
        """Where a post-only order of ``side`` rests: the best price on its own side (never crossing)."""
        return self.bid if side == "buy" else self.ask


def book_top(book: Any, band: float) -> BookTop | None:
    """From a ``LocalOrderBook`` (synced); None when it has no two-sided touch."""
    if book is None or not getattr(book, "synced", True):
        return None
    bid, ask = book.best_bid(), book.best_ask()
    if not bid or not ask:
        return None
    mid = (bid[0] + ask[0]) / 2
    b = Decimal(repr(band))
    lo, hi = mid * (1 - b), mid * (1 + b)
    bid_depth = sum((q for p, q in book.bids.items() if p >= lo), Decimal(0))
    ask_depth = sum((q for p, q in book.asks.items() if p <= hi), Decimal(0))
    return BookTop(bid[0], ask[0], bid_depth, ask_depth)


@dataclass(frozen=True)
class ExecutionPlan:
    style: Style
    slices: tuple[Decimal, ...]  # quantities, in order; one entry = not split
    reason: str  # why this plan, with its numbers
    depth_share: float | None = None  # the order's share of the visible depth it takes from

    @property
    def sliced(self) -> bool:
        return len(self.slices) > 1

    @property
    def simple(self) -> bool:
        """Whole, at market: the desk's ordinary path."""
        return self.style == "market" and not self.sliced


def plan_order(side: str, qty: Decimal, *, urgent: bool, top: BookTop | None, wallet: float, step: Decimal,
               min_notional: Decimal, rules: ExecutionRules) -> ExecutionPlan:
    if qty <= 0:
        raise ValueError(f"quantity must be positive, got {qty}")
    if urgent:
        return ExecutionPlan("market", (qty,), "urgent: market, whole")
    if top is None:
        return ExecutionPlan("market", (qty,), "no order book: market, whole")
    visible = top.taking(side)
    share = float(qty / visible) if visible > 0 else math.inf
    style: Style = "post_only" if top.spread >= rules.maker_min_spread else "market"
    limit = rules.depth_share(wallet)
    n = 1
    if share > limit:
        n = min(rules.max_slices, math.ceil(share / limit))
        price = top.mid
        if min_notional > 0 and price > 0:
            n = max(1, min(n, int(qty * price / min_notional)))
    slices = split(qty, n, step)
    why = (f"spread {top.spread:.4%} {'≥' if style == 'post_only' else '<'} {rules.maker_min_spread:.4%}: "
           f"{'post-only limit' if style == 'post_only' else 'market'}")
    if len(slices) > 1:
        why += f"; {share:.1%} of the visible depth > {limit:.0%}: {len(slices)} slices"
    return ExecutionPlan(style, slices, why, share)


def split(qty: Decimal, n: int, step: Decimal) -> tuple[Decimal, ...]:
    """``n`` slices on the step grid adding up to ``qty`` (the last takes the rounding)."""
    if n <= 1 or step <= 0:
        return (qty,)
    part = (qty / n / step).to_integral_value(rounding=ROUND_DOWN) * step
    if part <= 0:
        return (qty,)
    parts = [part] * (n - 1)
    parts.append(qty - part * (n - 1))
    return tuple(parts)
