"""Profit and loss from the trade records: by day, week or month, per pair, and the latest trades."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.persistence.models import Trade

Period = Literal["day", "week", "month"]


@dataclass(frozen=True)
class TradeView:
    id: int
    pair: str
    side: str
    status: str
    amount: Decimal
    open_rate: Decimal
    close_rate: Decimal | None
    open_date: dt.datetime
    close_date: dt.datetime | None
    net_pnl: Decimal
    fees: Decimal
    funding: Decimal
    exit_reason: str | None
    stop_price: Decimal | None
    leverage: int


@dataclass(frozen=True)
class PeriodPnL:
    start: dt.date
    net_pnl: Decimal
    trades: int
    wins: int


@dataclass(frozen=True)
class PairPerformance:
    pair: str
    trades: int
    wins: int
    net_pnl: Decimal
    fees: Decimal
    funding: Decimal

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0


def net(trade: Trade) -> Decimal:
    return trade.realized_pnl - trade.fees + trade.funding


def _view(t: Trade) -> TradeView:
    return TradeView(t.id, t.pair, t.side, t.status, t.amount, t.open_rate, t.close_rate, t.open_date, t.close_date,
                     net(t), t.fees, t.funding, t.exit_reason, t.stop_price, t.leverage)


def recent_trades(sessions: sessionmaker[Session], limit: int = 10, *, status: str | None = None) -> list[TradeView]:
    with sessions() as session:
        query = select(Trade).where(Trade.backtest_run_id.is_(None))
        if status:
            query = query.where(Trade.status == status)
        rows = session.scalars(query.order_by(Trade.open_date.desc(), Trade.id.desc()).limit(limit))
        return [_view(t) for t in rows]


def _closed(sessions: sessionmaker[Session], since: dt.datetime | None = None) -> list[Trade]:
    with sessions() as session:
        query = select(Trade).where(Trade.backtest_run_id.is_(None), Trade.status == "closed")
        if since is not None:
            query = query.where(Trade.close_date >= since)
        return list(session.scalars(query))


def _period_start(day: dt.date, period: Period) -> dt.date:
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)


def pnl_by_period(
    sessions: sessionmaker[Session],
    period: Period = "day",
    count: int = 7,
    *,
    tz: str = "UTC",
    now: dt.datetime | None = None,
) -> list[PeriodPnL]:
    """The last ``count`` periods, newest first, including empty ones; periods follow the user's time zone."""
    zone = zoneinfo.ZoneInfo(tz)
    today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone).date()
    starts: list[dt.date] = []
    cursor = _period_start(today, period)
    for _ in range(count):
        starts.append(cursor)
        if period == "day":
            cursor -= dt.timedelta(days=1)
        elif period == "week":
            cursor -= dt.timedelta(days=7)
        else:
            cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
    oldest = dt.datetime.combine(starts[-1], dt.time(0), zone)
    buckets: dict[dt.date, list[Trade]] = defaultdict(list)
    for trade in _closed(sessions, oldest.astimezone(dt.timezone.utc)):
        if trade.close_date is not None:
            buckets[_period_start(trade.close_date.astimezone(zone).date(), period)].append(trade)
    return [
        PeriodPnL(s, sum((net(t) for t in buckets[s]), Decimal(0)), len(buckets[s]),
                  sum(1 for t in buckets[s] if net(t) > 0))
        for s in starts
    ]


def performance_by_pair(sessions: sessionmaker[Session]) -> list[PairPerformance]:
    groups: dict[str, list[Trade]] = defaultdict(list)
    for trade in _closed(sessions):
        groups[trade.pair].append(trade)
    out = [
        PairPerformance(pair, len(ts), sum(1 for t in ts if net(t) > 0), sum((net(t) for t in ts), Decimal(0)),
                        sum((t.fees for t in ts), Decimal(0)), sum((t.funding for t in ts), Decimal(0)))
        for pair, ts in groups.items()
    ]
    return sorted(out, key=lambda p: p.net_pnl, reverse=True)
