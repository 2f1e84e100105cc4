"""The daily report's figures from the service's views, formatted; the bot's catalog supplies the sentences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from reports.text.format import DASH, money, percent, signed
from reports.text.positions import PositionRow, position_rows
from trader.service.pnl import PeriodPnL
from trader.service.views import BalanceView, PositionView


@dataclass(frozen=True)
class DailyFigures:
    equity: str  # margin balance: wallet + unrealised
    wallet: str
    unrealized: str
    margin_ratio: str
    day_pnl: str
    day_trades: int
    day_wins: int
    period_pnl: str  # over all the rows given (e.g. the last 7 days)
    period_days: int
    period_trades: int
    positions: list[PositionRow]
    closest_liquidation: str  # the smallest distance among open positions, "-" when none


def daily_figures(balance: BalanceView | None, days: Sequence[PeriodPnL],
                  positions: Sequence[PositionView]) -> DailyFigures:
    """``days`` as the service returns them (newest first); the first row is today in the user's zone."""
    ordered = sorted(days, key=lambda r: r.start, reverse=True)
    today = ordered[0] if ordered else None
    total = sum((r.net_pnl for r in ordered), Decimal(0))
    distances = [p.liquidation_distance for p in positions if p.liquidation_distance is not None]
    return DailyFigures(
        equity=money(balance.margin_balance) if balance else DASH,
        wallet=money(balance.wallet) if balance else DASH,
        unrealized=signed(balance.unrealized_pnl) if balance else DASH,
        margin_ratio=percent(balance.margin_ratio) if balance else DASH,
        day_pnl=signed(today.net_pnl) if today else DASH,
        day_trades=today.trades if today else 0,
        day_wins=today.wins if today else 0,
        period_pnl=signed(total) if ordered else DASH,
        period_days=len(ordered),
        period_trades=sum(r.trades for r in ordered),
        positions=position_rows(positions),
        closest_liquidation=percent(min(distances)) if distances else DASH,
    )
