"""USDⓈ-M linear perpetual accounting: margin, fees, funding, tiered maintenance margin and liquidation price.

Formulas follow binance-futures.md §2–§5 (Binance FAQ "liquidation price", funding and fee pages). Everything here is
a pure function of its inputs so the tests can check each one against a hand computation; the broker composes them.
Money is float USDT: the engine runs per bar and Decimal would cost more than the rounding it saves; quantities and
order prices are snapped to the exchange's step/tick by ``InstrumentSpec`` before they get here.
"""

from __future__ import annotations

from dataclasses import dataclass

import backtrader as bt

from trader.backtest.instruments import Bracket, InstrumentSpec

# VIP 0 USDⓈ-M rates (binance-futures.md §5).
MAKER_FEE = 0.0002
TAKER_FEE = 0.0005


@dataclass(frozen=True)
class FeeSchedule:
    maker: float = MAKER_FEE
    taker: float = TAKER_FEE

    def fee(self, price: float, qty: float, maker: bool) -> float:
        """Commission on one fill: notional × rate, charged on every fill (entries, exits, partials)."""
        return abs(qty) * price * (self.maker if maker else self.taker)


@dataclass(frozen=True)
class SlippageModel:
    """Adverse price offset on taker fills (market orders, triggered stops, liquidation excluded).

    ``bps`` is a flat cost; ``range_share`` adds a share of the fill bar's high-low range, which grows slippage in
    violent bars where a fixed number would flatter the result. Maker (resting limit) fills get no slippage.
    """

    bps: float = 1.0
    range_share: float = 0.0

    def apply(self, price: float, is_buy: bool, bar_range: float = 0.0) -> float:
        off = price * self.bps * 1e-4 + self.range_share * bar_range
        return price + off if is_buy else price - off


def initial_margin(qty: float, price: float, leverage: int) -> float:
    """Margin posted for a position: |q| × price / leverage."""
    return abs(qty) * price / leverage


def unrealized_pnl(signed_qty: float, entry: float, mark: float) -> float:
    return signed_qty * (mark - entry)


def maintenance_margin(notional: float, brackets: tuple[Bracket, ...]) -> float:
    """Tiered maintenance margin: notional × mmr(bracket) − cum (continuous across bracket floors)."""
    b = _bracket(notional, brackets)
    return notional * b.mmr - b.cum


def _bracket(notional: float, brackets: tuple[Bracket, ...]) -> Bracket:
    for b in brackets:
        if notional < b.cap:
            return b
    return brackets[-1]


def liquidation_price(
    side: int,
    qty: float,
    entry: float,
    wallet: float,
    brackets: tuple[Bracket, ...],
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
    b = _bracket(qty * (ref_price if ref_price is not None else entry), brackets)
    lp = 0.0
    for _ in range(len(brackets) + 1):
        denom = qty * b.mmr - side * qty
        lp = (wallet - other_mm + other_upnl + b.cum - side * qty * entry) / denom
        if lp <= 0:
            return None
        nb = _bracket(qty * lp, brackets)
        if nb == b:
            break
        b = nb
    return lp


def funding_cashflow(signed_qty: float, mark: float, rate: float) -> float:
    """Cash to the account at one settlement: −q × mark × rate (rate > 0: longs pay, shorts receive)."""
    return -signed_qty * mark * rate


class FuturesCommInfo(bt.CommInfoBase):
    """Backtrader's view of a USDT-M linear contract, for the order/trade records Backtrader keeps.

    ``stocklike=True`` with explicit leverage is the combination that values a leveraged position correctly
    (stack-notes.md); ``automargin`` would apply leverage twice. The FuturesBroker does the account arithmetic with
    the functions above and hands this object to orders so ``Trade`` objects carry consistent P&L and commission.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("commission", TAKER_FEE),
        ("leverage", 25.0),
        ("mult", 1.0),
    )

    def __init__(self, spec: InstrumentSpec | None = None, fees: FeeSchedule | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.fees = fees or FeeSchedule()

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return self.fees.fee(price, size, maker=False)

    def get_margin(self, price: float) -> float:
        return price / self.p.leverage

    def getsize(self, price: float, cash: float) -> float:
        # Backtrader's version returns whole units; crypto sizes are fractional and stepped.
        qty = cash * self.p.leverage / price
        return self.spec.round_qty_down(qty) if self.spec else qty

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return size * (newprice - price)
