"""Daily P&L bars: one bar per local day, losses hatched as well as coloured, the running total as a line."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports import render
from reports.charts.common import Labels, empty_panel, merge_labels, money_axis
from reports.text.format import signed
from reports.theme import SMALL_PT, SQUARE, Theme
from trader.service.pnl import PeriodPnL

LABELS = {
    "title": "Daily P&L",
    "total": "total",
    "cumulative": "cumulative",
    "pnl": "P&L (USDT)",
    "no_data": "No closed trades",
}

MAX_BARS = 31  # a month; more days than this are unreadable on a phone and the caller should pick weeks


def draw_daily_pnl(ax: Axes, theme: Theme, rows: Sequence[PeriodPnL], labels: dict[str, str], title: str | None,
                   cumulative: bool = True) -> None:
    rows = sorted(rows, key=lambda r: r.start)[-MAX_BARS:]
    if not rows or all(r.trades == 0 and r.net_pnl == 0 for r in rows):
        ax.set_title(title or labels["title"], loc="left")
        empty_panel(ax, theme, labels["no_data"])
        return
    values = np.array([float(r.net_pnl) for r in rows])
    x = np.arange(len(rows))
    pos = values >= 0
    ax.bar(x[pos], values[pos], width=0.72, color=theme.up, edgecolor=theme.up, zorder=3)
    ax.bar(x[~pos], values[~pos], width=0.72, color=theme.down, edgecolor=theme.foreground, hatch="//",
           linewidth=0.8, zorder=3)
    ax.axhline(0, color=theme.foreground, lw=1.2, zorder=4)
    total = sum((r.net_pnl for r in rows), Decimal(0))
    ax.set_title(f"{title or labels['title']}  {labels['total']} {signed(total)}", loc="left",
                 color=theme.up if total >= 0 else theme.down)
    cum = np.cumsum(values)
    shown = np.r_[values, cum if cumulative and len(rows) > 1 else [], 0.0]
    lo, hi = float(shown.min()), float(shown.max())
    span = (hi - lo) or 1.0
    # Headroom for the value labels above and below the bars.
    ax.set_ylim(lo - span * (0.12 if lo < 0 else 0.02), hi + span * (0.12 if hi > 0 else 0.02))
    if len(rows) <= 10:
        for xi, v, r in zip(x, values, rows, strict=True):
            if r.trades or v:
                ax.annotate(signed(r.net_pnl, 0 if abs(v) >= 100 else 2), (xi, v), xytext=(0, 4 if v >= 0 else -4),
                            textcoords="offset points", ha="center", va="bottom" if v >= 0 else "top",
                            fontsize=SMALL_PT, color=theme.foreground, zorder=7,
                            bbox={"boxstyle": "round,pad=0.1", "fc": theme.panel, "ec": "none", "alpha": 0.7})
    if cumulative and len(rows) > 1:
        ax.plot(x, cum, color=theme.accent, lw=2.2, marker="o", markersize=6, zorder=6, label=labels["cumulative"])
        ax.legend(loc="best")
    step = max(1, int(np.ceil(len(rows) / 7)))  # at most 7 date labels across the width
    ax.set_xticks(x[::step], [r.start.strftime("%m-%d") for r in rows][::step])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(labels["pnl"])
    ax.grid(axis="x", visible=False)
    money_axis(ax)


def daily_pnl_chart(rows: Sequence[PeriodPnL], *, theme: str | Theme = "light", title: str | None = None,
                    labels: Labels = None, cumulative: bool = True, size_px: tuple[int, int] = SQUARE) -> bytes:
    """PNG of daily P&L rows (the service's ``pnl("day", n, tz)`` or ``series.daily_pnl`` of a backtest).

    The rows' dates are already local days in the user's zone, so no conversion happens here."""
    words = merge_labels(LABELS, labels)

    def draw(fig: Figure, th: Theme) -> None:
        draw_daily_pnl(fig.subplots(), th, rows, words, title, cumulative)

    return render.render(draw, theme, size_px)
