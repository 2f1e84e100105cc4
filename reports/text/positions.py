"""Open positions as rows of formatted fields; the bot places them into its translated line templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from reports.text.format import DASH, amount, percent, price, short_pair, signed
from reports.text.table import format_table
from trader.service.views import PositionView

# Below this distance to liquidation a position is flagged; 25x leverage leaves ~4 % by construction, so the
# threshold sits under that and fires only when a position has moved against us.
DANGER_DISTANCE = Decimal("0.03")


@dataclass(frozen=True)
class PositionRow:
    pair: str
    side: str  # long | short (a key: the bot translates it)
    amount: str
    entry: str
    mark: str
    pnl: str
    liquidation: str
    distance: str
    stop: str
    leverage: str
    danger: bool  # liquidation closer than DANGER_DISTANCE

    def cells(self) -> list[str]:
        return [self.pair, self.side, self.amount, self.entry, self.mark, self.pnl, self.liquidation, self.distance,
                self.stop, self.leverage]


COLUMNS = ("pair", "side", "amount", "entry", "mark", "pnl", "liquidation", "distance", "stop", "leverage")


def position_row(p: PositionView) -> PositionRow:
    danger = p.liquidation_distance is not None and p.liquidation_distance < DANGER_DISTANCE
    return PositionRow(
        pair=short_pair(p.pair),
        side=p.side,
        amount=amount(p.amount),
        entry=price(p.entry_price),
        mark=price(p.mark_price),
        pnl=signed(p.unrealized_pnl),
        liquidation=price(p.liquidation_price),
        distance=percent(p.liquidation_distance),
        stop=price(p.stop_price),
        leverage=f"{p.leverage}x" if p.leverage else DASH,
        danger=danger,
    )


def position_rows(positions: Sequence[PositionView]) -> list[PositionRow]:
    """Closest to liquidation first: that is the line to read first on a small screen."""
    ordered = sorted(positions, key=lambda p: (p.liquidation_distance is None,
                                               p.liquidation_distance or Decimal(0)))
    return [position_row(p) for p in ordered]


def positions_table(rows: Sequence[PositionRow], headers: Sequence[str] | None = None,
                    columns: Sequence[str] = ("pair", "side", "amount", "pnl", "distance")) -> str:
    """A monospace table of the chosen columns (default: the ones that fit a phone's width in ``<pre>``)."""
    index = [COLUMNS.index(c) for c in columns]
    cells = [[r.cells()[i] for i in index] for r in rows]
    if headers is not None:
        cells.insert(0, list(headers))
    return format_table(cells, align="ll" + "r" * (len(columns) - 2))
