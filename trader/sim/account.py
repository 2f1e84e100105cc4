"""Futures account accounting: one-way positions, wallet, margin, liquidation price (Binance's formula).

All money is Decimal. ``wallet`` is the total wallet balance (cross wallet plus every isolated wallet): fees,
realized PnL and funding move it; isolated margin only moves between its cross and isolated parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trader.sim.brackets import Bracket, bracket_for, maintenance_margin

ZERO = Decimal(0)
Q8 = Decimal("0.00000001")


def q8(d: Decimal) -> Decimal:
    return d.quantize(Q8)


@dataclass
class Position:
    symbol: str
    amt: Decimal = ZERO  # signed, long > 0
    entry: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "CROSSED"  # or ISOLATED
    isolated_wallet: Decimal = ZERO
    update_time: int = 0

    @property
    def side(self) -> int:
        return 1 if self.amt > 0 else -1 if self.amt < 0 else 0

    @property
    def isolated(self) -> bool:
        return self.margin_type == "ISOLATED"

    def unrealized(self, mark: Decimal) -> Decimal:
        return self.amt * (mark - self.entry)

    def notional(self, mark: Decimal) -> Decimal:
        return self.amt * mark

    def initial_margin(self, mark: Decimal) -> Decimal:
        return abs(self.amt) * mark / self.leverage


@dataclass
class FillResult:
    realized_pnl: Decimal
    closed_qty: Decimal
    opened_qty: Decimal


@dataclass
class Account:
    wallet: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    dual_side: bool = False
    multi_assets: bool = False
    update_time: int = 0
    in_liquidation: bool = False

    def position(self, symbol: str, default_leverage: int = 20) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(symbol, leverage=default_leverage)
        return p

    # ---- fills ------------------------------------------------------------------------------------------------
    def apply_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal, fee: Decimal, t: int) -> FillResult:
        """Book one fill: the reducing part realizes PnL at ``price`` (entry unchanged), the opening part averages
        into the entry. Fee and realized PnL hit the wallet."""
        pos = self.position(symbol)
        signed = qty if side == "BUY" else -qty
        closed = ZERO
        pnl = ZERO
        if pos.amt != 0 and (pos.amt > 0) != (signed > 0):
            closed = min(qty, abs(pos.amt))
            pnl = closed * (price - pos.entry) * pos.side
            if pos.isolated:
                # The closed share of the isolated margin goes back to the cross wallet.
                pos.isolated_wallet -= pos.isolated_wallet * closed / abs(pos.amt)
        opened = qty - closed
        if opened > 0:
            old = abs(pos.amt) - closed
            new_side_amt = old + opened
            base_entry = pos.entry if old > 0 else ZERO
            pos.entry = (old * base_entry + opened * price) / new_side_amt
            if pos.isolated:
                pos.isolated_wallet += opened * price / pos.leverage
        pos.amt += signed
        if pos.amt == 0:
            pos.entry = ZERO
            if pos.isolated:
                # Whatever remains of an isolated wallet (rounding) returns to cross.
                pos.isolated_wallet = ZERO
        self.wallet += pnl - fee
        pos.update_time = t
        self.update_time = t
        return FillResult(pnl, closed, opened)

    # ---- margin -----------------------------------------------------------------------------------------------
    def cross_wallet(self) -> Decimal:
        return self.wallet - sum((p.isolated_wallet for p in self.positions.values() if p.isolated), ZERO)

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.amt != 0]


@dataclass
class Summary:
    wallet: Decimal
    cross_wallet: Decimal
    unrealized: Decimal
    cross_unrealized: Decimal
    margin_balance: Decimal
    maint_margin: Decimal
    cross_maint_margin: Decimal
    position_im: Decimal
    open_order_im: Decimal
    available: Decimal

    @property
    def initial_margin(self) -> Decimal:
        return self.position_im + self.open_order_im

    @property
    def margin_ratio(self) -> Decimal:
        mb = self.cross_wallet + self.cross_unrealized
        return self.cross_maint_margin / mb if mb > 0 else Decimal("Infinity")


def summarize(acc: Account, marks: dict[str, Decimal], tables: dict[str, list[Bracket]],
              open_order_im: dict[str, Decimal] | None = None) -> Summary:
    """Account totals as Binance's account endpoint defines them (FAQ wallet/margin/available balance)."""
    oo = open_order_im or {}
    upnl = cross_upnl = mm = cross_mm = pim = cross_pim = ZERO
    for p in acc.open_positions():
        m = marks[p.symbol]
        u = p.unrealized(m)
        mmp = maintenance_margin(tables[p.symbol], p.notional(m))
        im = p.initial_margin(m)
        upnl += u
        mm += mmp
        pim += im
        if not p.isolated:
            cross_upnl += u
            cross_mm += mmp
            cross_pim += im
    ooim = sum(oo.values(), ZERO)
    cw = acc.cross_wallet()
    available = max(ZERO, cw + cross_upnl - cross_pim - ooim)
    return Summary(acc.wallet, cw, upnl, cross_upnl, acc.wallet + upnl, mm, cross_mm, pim, ooim, available)


def liquidation_price(acc: Account, symbol: str, marks: dict[str, Decimal],
                      tables: dict[str, list[Bracket]]) -> Decimal | None:
    """Binance's one-way liquidation price (FAQ-LIQ):
    LP = (WB − TMM1 + UPNL1 + cum − s·P·EP) / (P·MMR − s·P), with WB the cross wallet (cross) or the position's
    isolated wallet (TMM1 = UPNL1 = 0), and the bracket re-chosen until P·LP lies in it. None when LP ≤ 0."""
    pos = acc.positions.get(symbol)
    if pos is None or pos.amt == 0:
        return None
    table = tables[symbol]
    s = Decimal(pos.side)
    size = abs(pos.amt)
    if pos.isolated:
        wb, tmm, upnl = pos.isolated_wallet, ZERO, ZERO
    else:
        wb = acc.cross_wallet()
        tmm = upnl = ZERO
        for other in acc.open_positions():
            if other.symbol == symbol or other.isolated:
                continue
            m = marks[other.symbol]
            tmm += maintenance_margin(tables[other.symbol], other.notional(m))
            upnl += other.unrealized(m)
    bracket = bracket_for(table, size * marks[symbol])
    lp = ZERO
    for _ in range(len(table) + 1):
        denom = size * bracket.mmr - s * size
        if denom == 0:
            return None
        lp = (wb - tmm + upnl + bracket.cum - s * size * pos.entry) / denom
        if lp <= 0:
            return None
        nb = bracket_for(table, size * lp)
        if nb.bracket == bracket.bracket:
            break
        bracket = nb
    return lp


def funding_payment(amt: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Cash flow to the account at a settlement: −q × mark × rate (longs pay when the rate is positive)."""
    return q8(-amt * mark * rate)
