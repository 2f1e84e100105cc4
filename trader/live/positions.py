"""Position mirror and trade books: what the exchange holds, as the desk has seen it fill, and the running numbers
of each trade (flat to flat) written to its Trade row."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from trader.live.ledger import Ledger, utc_from_ms
from trader.live.orders import ZERO, TradeBook
from trader.model.money import realized_pnl


class PositionBook:
    def __init__(self, ledger: Ledger, leverage: int) -> None:
        self.ledger = ledger
        self.leverage = leverage
        self.positions: dict[str, tuple[Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO))  # size, entry
        self.trades: dict[str, TradeBook] = {}

    def fill(self, pair: str, signed: Decimal, price: Decimal, fee: Decimal, trade_id: int | None,
                       purpose: str, tag: str, ts_ms: int) -> Decimal:
        """Update the position mirror and the trade book; returns the realized price PnL of the fill."""
        size, entry = self.positions[pair]
        realized = ZERO
        book = self.trades.get(pair)
        if book is None:
            book = self.trades[pair] = TradeBook(trade_id, "long" if signed > 0 else "short")
        new = size + signed
        if size == 0 and book.opened_ms is None:
            book.opened_ms = ts_ms
        if size == 0 or (size > 0) == (signed > 0):
            entry = (entry * abs(size) + price * abs(signed)) / abs(new)
            book.entry_qty += abs(signed)
            book.entry_value += abs(signed) * price
        else:
            closed = min(abs(signed), abs(size))
            realized = realized_pnl(closed, entry, price, 1 if size > 0 else -1)
            book.exit_qty += closed
            book.exit_value += closed * price
            book.realized += realized
            book.exit_reason = tag or purpose
            if new == 0:
                entry = ZERO
            elif (new > 0) != (size > 0):  # reversed through zero: the rest opens at this price
                entry = price
        book.fees += fee
        book.max_qty = max(book.max_qty, abs(new))
        self.positions[pair] = (new, entry)
        if book.id:
            fields: dict[str, Any] = {
                "amount": book.max_qty, "amount_open": abs(new), "fees": book.fees, "realized_pnl": book.realized,
                "open_rate": (book.entry_value / book.entry_qty) if book.entry_qty else ZERO,
                "stake": (book.entry_value / self.leverage) if book.entry_qty else ZERO,
            }
            if size == 0 and new != 0:
                fields.update(status="open", open_date=utc_from_ms(ts_ms))  # the exchange's time of the fill
            if new == 0:
                fields.update(status="closed", close_rate=book.exit_value / book.exit_qty if book.exit_qty else None,
                              exit_reason=book.exit_reason[:64], close_date=utc_from_ms(ts_ms))
            self.ledger.update_trade(book.id, **fields)
        if new == 0:
            self.trades.pop(pair, None)
        return realized


def position_side(signed_qty: Decimal, opens: bool) -> str:
    """The side of the position a fill of ``signed_qty`` (+ buy, − sell) opens (``opens``) or reduces."""
    buys = signed_qty > 0
    return "long" if buys == opens else "short"
