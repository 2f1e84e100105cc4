"""USDⓈ-M linear perpetual money rules: margin, PnL, fees, funding, tiered maintenance margin, liquidation.

Formulas follow binance-futures.md §2–§5 (Binance's FAQ pages on liquidation price, funding and fees). Each is a pure
function of its inputs so a test can check it against a hand computation; the backtest broker, the live broker and
desk, the service, flatten and sizing all call these. Money is float USDT: the backtest runs them per bar and Decimal
would cost more than the rounding it saves. The simulator keeps its own Decimal copy as the exchange's stand-in, and
a property test holds the two together (tests/sim/test_model_agreement.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from trader.model.instruments import Bracket


def initial_margin(qty: float, price: float, leverage: int) -> float:
    """Margin posted for a position: |q| × price / leverage."""
    return abs(qty) * price / leverage


def unrealized_pnl(signed_qty: float, entry: float, mark: float) -> float:
    """q × (mark − entry), q signed (long > 0)."""
    return signed_qty * (mark - entry)


def realized_pnl(closed_qty: float, entry: float, exit_price: float, side: int) -> float:
    """Price PnL of closing ``closed_qty`` (absolute) at ``exit_price``: c × (X − E) × side, side +1 long / −1 short.
    The entry price is unchanged by reductions; fees are not in it (Binance's ``realizedPnl`` excludes them)."""
    return abs(closed_qty) * (exit_price - entry) * side


def commission(price: float, qty: float, rate: float) -> float:
    """Commission on one fill: |qty| × price × rate."""
    return abs(qty) * price * rate


def bracket_for(notional: float, brackets: Sequence[Bracket]) -> Bracket:
    """The bracket whose [floor, cap) holds |notional|; the last one beyond the top cap."""
    n = abs(notional)
    for b in brackets:
        if n < b.cap:
            return b
    return brackets[-1]


def maintenance_margin(notional: float, brackets: Sequence[Bracket]) -> float:
    """Tiered maintenance margin: |notional| × mmr(bracket) − cum (continuous across bracket floors)."""
    b = bracket_for(notional, brackets)
    return abs(notional) * b.mmr - b.cum


def max_notional(brackets: Sequence[Bracket], leverage: int) -> float:
    """``maxNotionalValue``: the cap of the highest bracket whose max leverage still allows ``leverage``."""
    allowed = [b.cap for b in brackets if b.max_leverage >= leverage]
    return max(allowed) if allowed else 0.0


def max_leverage_for(brackets: Sequence[Bracket], notional: float) -> int | None:
    """The bracket's maximum leverage for a position of this notional; None beyond the top cap."""
    for b in brackets:
        if b.floor <= notional < b.cap:
            return b.max_leverage
    return None


def liquidation_price(
    side: int,
    qty: float,
    entry: float,
    wallet: float,
    brackets: Sequence[Bracket],
    other_mm: float = 0.0,
    other_upnl: float = 0.0,
    ref_price: float | None = None,
) -> float | None:
    """Binance's one-way cross-margin liquidation price (FAQ-LIQ; isolated is ``wallet`` = isolated margin, others 0).

    ``LP = (WB − TMM1 + UPNL1 + cum − s·P·EP) / (P·MMR − s·P)``. The bracket comes from the notional at
    ``ref_price`` (the current mark; entry if not given) and is re-chosen from ``P × LP`` until it is consistent,
    as the FAQ prescribes. Returns None when no positive price liquidates (an over-collateralised position).
    """
    if qty <= 0 or side not in (1, -1):
        raise ValueError("qty is the absolute size and side is +1 (long) or -1 (short)")
    b = bracket_for(qty * (ref_price if ref_price is not None else entry), brackets)
    lp = 0.0
    for _ in range(len(brackets) + 1):
        denom = qty * b.mmr - side * qty
        if denom == 0:
            return None
        lp = (wallet - other_mm + other_upnl + b.cum - side * qty * entry) / denom
        if lp <= 0:
            return None
        nb = bracket_for(qty * lp, brackets)
        if nb == b:
            break
        b = nb
    return lp


def liquidation_fee(notional: float, rate: float, maint_margin: float, margin_left: float) -> float:
    """The liquidation (clearance) fee: ``|notional| × liquidationFee``, taking at most the position's maintenance
    margin at the liquidation price and never more than the margin balance left after the close (binance-futures.md
    §3.2's model). At the exact liquidation price both caps are the same number; through a gap the balance left is
    smaller, and the fee never pushes an account into the insurance fund by itself."""
    return max(0.0, min(abs(notional) * rate, maint_margin, margin_left))


def funding_cashflow(signed_qty: float, mark: float, rate: float) -> float:
    """Cash to the account at one settlement: −q × mark × rate (rate > 0: longs pay, shorts receive)."""
    return -signed_qty * mark * rate


def holds_at_settlement(opened_ms: int, closed_ms: int | None, settlement_ms: int) -> bool:
    """Does a position opened at ``opened_ms`` (and closed at ``closed_ms``, None while open) take part in the
    settlement at ``settlement_ms``? Fills stamped at the settlement instant happen before it (binance-futures.md §4):
    a position opened exactly at 08:00 pays the 08:00 settlement, one closed exactly then does not."""
    return opened_ms <= settlement_ms and (closed_ms is None or closed_ms > settlement_ms)


def open_cost(qty: float, price: float, mark: float, leverage: int, direction: int) -> float:
    """Binance's cost to open (FAQ-COST): initial margin at the order price plus the open loss against the mark,
    ``qty × |min(0, direction × (mark − price))|``; direction +1 buy, −1 sell."""
    return abs(qty) * price / leverage + abs(qty) * abs(min(0.0, direction * (mark - price)))
