"""Position sizing by risk (risk-rules.md, "Per trade"), and ``size_entry``: the account's risk rules
(trader/risk) applied to an entry, then the size. Every strategy and the live engine's forced entries size through
``size_entry``, so the backtest and live decide the same size from the same parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trader.model.instruments import InstrumentSpec
from trader.model.money import commission, initial_margin, max_notional
from trader.risk.book import RiskBook
from trader.risk.limits import limits_from_params
from trader.risk.rules import EntryDecision, RuleHit, percentile_rank


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
    capped: bool = False  # the margin cap (stake_amount) made it smaller than the risk asked for


def risk_position_size(
    wallet: float,
    available: float,
    entry: float,
    distance: float,
    spec: InstrumentSpec,
    leverage: int,
    risk_per_trade: float = 0.02,
    fee_rate: float = 0.0005,
    max_margin: float = 0.0,
) -> SizeDecision:
    """Quantity that loses ``risk_per_trade`` of the wallet at the stop, stepped down to the exchange's lot size;
    with ``max_margin`` > 0 (the config's ``stake_amount``) the margin one entry posts is capped at it.

    Skips (qty 0 with a reason) when the notional is below the exchange minimum or the margin plus the opening fee
    exceeds what the account can post, rather than silently trading a different size.
    """
    if wallet <= 0 or entry <= 0 or distance <= 0:
        return SizeDecision(0.0, 0.0, 0.0, "no wallet, price or stop distance")
    notional = risk_per_trade * wallet / distance
    capped = max_margin > 0 and notional / leverage > max_margin
    if capped:
        notional = max_margin * leverage
    qty = spec.round_qty_down(notional / entry)
    notional = qty * entry
    margin = initial_margin(qty, entry, leverage)
    if qty <= 0 or notional < spec.min_notional:
        return SizeDecision(0.0, notional, margin, f"notional {notional:.2f} below minimum {spec.min_notional}")
    if margin + commission(entry, qty, fee_rate) > available:
        return SizeDecision(0.0, notional, margin, f"margin {margin:.2f} exceeds available {available:.2f}")
    if notional > max_notional(spec.brackets, leverage):
        return SizeDecision(0.0, notional, margin, f"notional above the {leverage}x bracket cap")
    return SizeDecision(qty, notional, margin, capped=capped)


def vol_rank(atr: Any, close: Any, window: int) -> float:
    """Percentile rank of the current ATR/price among the last ``window`` bars of two Backtrader lines (NaN
    before a quarter of the window is known, or without an ATR)."""
    n = min(int(window), len(close))
    if n < max(2, window // 4):
        return math.nan
    a = np.asarray(atr.get(size=n), dtype="float64")
    c = np.asarray(close.get(size=n), dtype="float64")
    if len(a) != n or len(c) != n:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = a / c
    return percentile_rank(ratio, float(ratio[-1]))


def size_entry(book: RiskBook, wallet: float, available: float, pair: str, side: int, entry: float,
               distance: float, spec: InstrumentSpec, leverage: int, base_risk: float, fee_rate: float = 0.0005,
               vol: float = math.nan, regime: str = "unknown") -> tuple[SizeDecision, EntryDecision]:
    """The account's risk rules on one entry (``RiskBook.decide``), then the size at the risk they leave.

    ``base_risk`` is risk_per_trade times the strategy's own multipliers (grade, fusion, latency safe mode). On a
    size > 0 the position's risk is booked as open (the caller un-books it with ``book.cancelled`` if the entry
    is not sent or never fills)."""
    decision = book.decide(pair, side, base_risk, wallet, vol, regime)
    if decision.risk <= 0:
        hit = decision.blocked
        why = f"{hit.rule}: {hit.values}" if hit is not None else "no risk left"
        return SizeDecision(0.0, 0.0, 0.0, why), decision
    size = risk_position_size(wallet, available, entry, distance, spec, leverage, decision.risk, fee_rate,
                              book.limits.stake_amount)
    if size.qty > 0:
        risk = size.qty * entry * distance / wallet
        if size.capped:
            book.record(pair, side, RuleHit("stake_amount", "shrunk", {
                "margin": round(size.margin, 2), "limit": book.limits.stake_amount, "wanted": decision.risk,
                "risk": round(risk, 6)}))
        book.opened(pair, side, risk)
    return size, decision



def strategy_book(strategy: Any) -> RiskBook:
    """The RiskBook of a running strategy: its risk parameters; the broker's event sink (live: the engine's bus)
    and market gate (liquidity tiers, maintenance), when it carries them. Positions the broker already holds (a
    live restart) are adopted, so they count against the budgets from the first bar; the loss streak, the wallet's
    peak and the trade rate come back from the ledger (the broker's ``risk_history``)."""
    book = RiskBook(limits_from_params(strategy.p), sink=getattr(strategy.broker, "risk_sink", None),
                    gate=getattr(strategy.broker, "market_gate", None))
    for d in strategy.datas:
        size = strategy.broker.getposition(d).size
        if size:
            book.adopt(d._name, 1 if size > 0 else -1)
    history = getattr(strategy.broker, "risk_history", None)  # live: the ledger's recent trades
    if history is not None:
        book.restore(history, float(strategy.broker.wallet_balance()))
    return book
