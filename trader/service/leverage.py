"""When may leverage change? Bounds from the config and the pair's brackets, and the liquidation buffer.

Risk rules cap a stop's distance from entry at ``stop_leverage_factor / leverage`` (3.2 % at 25x), which keeps the
stop clear of liquidation (about 1/leverage away). Raising leverage shrinks that room: an open position whose stop
sits farther than the new cap would be liquidated before its stop fires, so the change is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.model.instruments import as_brackets
from trader.model.money import max_leverage_for as _max_leverage_for


@dataclass(frozen=True)
class OpenPosition:
    pair: str
    side: str
    entry_price: Decimal
    notional: Decimal
    stop_price: Decimal | None


def max_leverage_for(tiers: Sequence[Any], notional: Decimal) -> int | None:
    """The bracket's maximum leverage for a position of this notional (ccxt leverage tiers, leverageBracket rows or
    the model's brackets); None beyond the top cap."""
    brackets = as_brackets(tiers)
    return _max_leverage_for(brackets, float(notional)) if brackets else None


@dataclass(frozen=True)
class Problem:
    """One reason a leverage change cannot be made: a refusal reason (trader/service/errors.py REASONS), its
    parameters, and the same in English."""

    reason: str
    params: dict[str, Any]
    text: str


def leverage_refusals(
    new: int,
    *,
    max_leverage: int,
    stop_leverage_factor: float,
    positions: Sequence[OpenPosition],
    tiers: Mapping[str, Sequence[Any]],
) -> tuple[list[Problem], list[Problem]]:
    """(invalid, refused): why the value is out of bounds, and why the current state forbids it."""
    invalid: list[Problem] = []
    refused: list[Problem] = []
    if not 1 <= new <= max_leverage:
        invalid.append(Problem("leverage_range", {"maximum": max_leverage},
                               f"leverage must be between 1 and {max_leverage} (max_leverage in the config)"))
        return invalid, refused
    for pair, pair_tiers in sorted(tiers.items()):
        top = max_leverage_for(pair_tiers, Decimal(0))
        if top is not None and new > top:
            invalid.append(Problem("leverage_pair_cap", {"pair": pair, "maximum": top}, f"{pair} allows at most {top}x"))
    cap = Decimal(str(stop_leverage_factor)) / new
    for pos in positions:
        allowed = max_leverage_for(tiers.get(pos.pair, ()), pos.notional)
        if allowed is not None and new > allowed:
            refused.append(Problem("leverage_position_cap",
                                   {"pair": pos.pair, "notional": f"{pos.notional:.0f}", "maximum": allowed},
                                   f"{pos.pair}: a {pos.notional:.0f} USDT position allows at most {allowed}x"))
        if pos.stop_price is not None and pos.entry_price > 0:
            distance = abs(pos.entry_price - pos.stop_price) / pos.entry_price
            if distance > cap:
                refused.append(Problem(
                    "leverage_stop_too_far",
                    {"pair": pos.pair, "side": pos.side, "distance": f"{distance:.2%}", "leverage": new,
                     "cap": f"{cap:.2%}"},
                    f"{pos.pair} {pos.side}: its stop is {distance:.2%} from entry; at {new}x a stop must be within "
                    f"{cap:.2%} to stay clear of liquidation"))
    return invalid, refused
