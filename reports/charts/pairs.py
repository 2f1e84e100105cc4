"""Per-pair performance: net P&L bars, best at the top, with trade count and win rate written beside each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports import render
from reports.charts.common import Labels, empty_panel, merge_labels, money_axis
from reports.text.format import percent, short_pair, signed
from reports.theme import SMALL_PT, SQUARE, Theme
from trader.service.pnl import PairPerformance

LABELS = {
    "title": "P&L by pair",
    "pnl": "Net P&L (USDT)",
    "trades": "tr",
    "others": "others",
    "no_data": "No closed trades",
}

MAX_PAIRS = 8  # what fits at 14 pt; the rest are summed into one "others" bar


def draw_pairs(ax: Axes, theme: Theme, rows: Sequence[PairPerformance], labels: dict[str, str],
               title: str | None) -> None:
    ax.set_title(title or labels["title"], loc="left")
    rows = sorted(rows, key=lambda r: r.net_pnl, reverse=True)
    if not rows:
        empty_panel(ax, theme, labels["no_data"])
        return
    if len(rows) > MAX_PAIRS:
        keep = sorted(rows, key=lambda r: abs(r.net_pnl), reverse=True)[: MAX_PAIRS - 1]
        rest = [r for r in rows if r not in keep]
        other = PairPerformance(labels["others"], sum(r.trades for r in rest), sum(r.wins for r in rest),
                                sum((r.net_pnl for r in rest), rows[0].net_pnl * 0),
                                sum((r.fees for r in rest), rows[0].fees * 0),
                                sum((r.funding for r in rest), rows[0].funding * 0))
        rows = sorted(keep, key=lambda r: r.net_pnl, reverse=True) + [other]
    values = np.array([float(r.net_pnl) for r in rows])
    y = np.arange(len(rows))[::-1]  # best on top
    pos = values >= 0
    ax.barh(y[pos], values[pos], height=0.62, color=theme.up, zorder=3)
    ax.barh(y[~pos], values[~pos], height=0.62, color=theme.down, edgecolor=theme.foreground, hatch="//",
            linewidth=0.8, zorder=3)
    ax.axvline(0, color=theme.foreground, lw=1.2, zorder=4)
    # The pair's trade count and win rate sit under its name; the bar's value sits right of the bar (or of
    # the zero line for a loss), so no text ever runs into the tick labels on the left.
    ax.set_yticks(y, [f"{short_pair(r.pair)}\n{r.trades} {labels['trades']} · {percent(r.win_rate, 0)}"
                      for r in rows], linespacing=1.1)
    ax.grid(axis="y", visible=False)
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - span * 0.04, hi + span * 0.55)
    for yi, v, r in zip(y, values, rows, strict=True):
        ax.annotate(signed(r.net_pnl), (max(v, 0.0), yi), xytext=(6, 0), textcoords="offset points", ha="left",
                    va="center", fontsize=SMALL_PT, color=theme.foreground, zorder=5)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(labels["pnl"])
    money_axis(ax, "x", nbins=4)


def pair_performance_chart(rows: Sequence[PairPerformance], *, theme: str | Theme = "light",
                           title: str | None = None, labels: Labels = None,
                           size_px: tuple[int, int] = SQUARE) -> bytes:
    """PNG of per-pair results (the service's ``performance_by_pair`` or ``series.pair_performance``)."""
    words = merge_labels(LABELS, labels)

    def draw(fig: Figure, th: Theme) -> None:
        draw_pairs(fig.subplots(), th, rows, words, title)

    return render.render(draw, theme, size_px)
