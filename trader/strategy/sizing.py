"""Position sizing by risk (risk-rules.md, "Per trade")."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trader.model.instruments import InstrumentSpec
from trader.model.money import commission, initial_margin, max_notional


def stop_distance(leverage: int, atr: float, entry: float, atr_multiplier: float = 2.0,
                  stop_leverage_factor: float = 0.8) -> float:
    """Stop distance as a fraction of entry: min(factor / leverage, k·ATR / entry).

    The cap keeps the stop inside the liquidation distance (≈ 3.6 % at 25x, binance-futures.md §3.1).
    """
    cap = stop_leverage_factor / leverage
    if not (math.isfinite(atr) and atr > 0 and entry > 0):
        return cap
    return min(cap, atr_multiplier * atr / entry)


@dataclass(frozen=True)
class SizeDecision:
    qty: float
    notional: float
    margin: float
    reason: str = ""  # why the entry is skipped, empty when qty > 0


def risk_position_size(
    wallet: float,
    available: float,
    entry: float,
    distance: float,
    spec: InstrumentSpec,
    leverage: int,
    risk_per_trade: float = 0.02,
    fee_rate: float = 0.0005,
) -> SizeDecision:
    """Quantity that loses ``risk_per_trade`` of the wallet at the stop, stepped down to the exchange's lot size.

    Skips (qty 0 with a reason) when the notional is below the exchange minimum or the margin plus the opening fee
    exceeds what the account can post, rather than silently trading a different size.
    """
    if wallet <= 0 or entry <= 0 or distance <= 0:
        return SizeDecision(0.0, 0.0, 0.0, "no wallet, price or stop distance")
    notional = risk_per_trade * wallet / distance
    qty = spec.round_qty_down(notional / entry)
    notional = qty * entry
    margin = initial_margin(qty, entry, leverage)
    if qty <= 0 or notional < spec.min_notional:
        return SizeDecision(0.0, notional, margin, f"notional {notional:.2f} below minimum {spec.min_notional}")
    if margin + commission(entry, qty, fee_rate) > available:
        return SizeDecision(0.0, notional, margin, f"margin {margin:.2f} exceeds available {available:.2f}")
    if notional > max_notional(spec.brackets, leverage):
        return SizeDecision(0.0, notional, margin, f"notional above the {leverage}x bracket cap")
    return SizeDecision(qty, notional, margin)
