"""Shaping engine results into what the charts plot: drawdown, decimated lines, daily and per-pair P&L.

Backtest trades become the same ``PeriodPnL`` and ``PairPerformance`` rows the live service returns, so one
chart draws both and the numbers agree with ``/pnl`` and ``/performance``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

import numpy as np

from reports.text.format import to_decimal
from reports.timeaxis import zone
from trader.service.pnl import PairPerformance, PeriodPnL


class ClosedTrade(Protocol):
    """What ``trader.backtest.broker.TradeRecord`` offers (and any other closed trade with the same fields)."""

    pair: str
    close_ms: int
    fees: float
    funding: float

    @property
    def net_pnl(self) -> float: ...


def drawdown(equity: np.ndarray, initial: float | None = None) -> np.ndarray:
    """Fraction below the running peak at each point (≤ 0). ``initial`` counts as the first peak."""
    eq = np.asarray(equity, dtype="float64")
    if not len(eq):
        return eq
    peak = np.maximum.accumulate(eq)
    if initial is not None:
        peak = np.maximum(peak, float(initial))
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / peak - 1.0, 0.0)
    return dd


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``max_points`` points keeping each bucket's minimum and maximum, so spikes and the deepest
    drawdown survive; a month of 1m equity is 43 200 points and a phone shows ~1000 pixels."""
    x = np.asarray(x)
    y = np.asarray(y, dtype="float64")
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        keep.extend(sorted({i, j}))
    keep[0:0] = [0]
    keep.append(n - 1)
    idx = np.unique(np.asarray(keep))
    return x[idx], y[idx]


def _day(ms: int, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).astimezone(zone(tz)).date()


def daily_pnl(trades: Iterable[ClosedTrade], tz: str = "UTC", start_ms: int | None = None,
              end_ms: int | None = None) -> list[PeriodPnL]:
    """Net P&L per local calendar day of the trades' close, newest first like the service's ``pnl("day")``.

    Days between ``start_ms`` and ``end_ms`` (or the first and last close) with no trade are included as zero
    rows: a quiet day is information too.
    """
    rows: dict[dt.date, list[float]] = defaultdict(list)
    for t in trades:
        rows[_day(int(t.close_ms), tz)].append(float(t.net_pnl))
    days = list(rows)
    if start_ms is not None:
        days.append(_day(int(start_ms), tz))
    if end_ms is not None:
        days.append(_day(int(end_ms) - 1, tz))  # end is exclusive
    if not days:
        return []
    first, last = min(days), max(days)
    out: list[PeriodPnL] = []
    day = last
    while day >= first:
        pnl = rows.get(day, [])
        total = to_decimal(float(np.sum(pnl))) if pnl else Decimal(0)
        out.append(PeriodPnL(day, total or Decimal(0), len(pnl), sum(1 for p in pnl if p > 0)))
        day -= dt.timedelta(days=1)
    return out


def pair_performance(trades: Iterable[ClosedTrade]) -> list[PairPerformance]:
    """Per-pair totals of backtest trades, best first, as ``performance_by_pair`` returns live ones."""
    groups: dict[str, list[ClosedTrade]] = defaultdict(list)
    for t in trades:
        groups[t.pair].append(t)

    def dec(values: Sequence[float]) -> Decimal:
        return to_decimal(float(np.sum(values))) or Decimal(0)

    out = [
        PairPerformance(
            pair=pair,
            trades=len(ts),
            wins=sum(1 for t in ts if t.net_pnl > 0),
            net_pnl=dec([t.net_pnl for t in ts]),
            fees=dec([t.fees + float(getattr(t, "liquidation_fee", 0.0)) for t in ts]),
            funding=dec([t.funding for t in ts]),
        )
        for pair, ts in groups.items()
    ]
    return sorted(out, key=lambda p: p.net_pnl, reverse=True)
