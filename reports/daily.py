"""The chart of the bot's daily report: balance header, P&L of the last days, and how far each open position
is from liquidation — the one number that decides whether to look at the phone again before tomorrow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports import render
from reports.charts.common import Labels, empty_panel, merge_labels, percent_axis
from reports.charts.pnl import LABELS as PNL_LABELS
from reports.charts.pnl import draw_daily_pnl
from reports.text.daily import daily_figures
from reports.text.format import local_time, percent
from reports.text.positions import DANGER_DISTANCE
from reports.theme import BASE_PT, PORTRAIT, SMALL_PT, TITLE_PT, Theme
from trader.service.pnl import PeriodPnL
from trader.service.views import BalanceView, PositionView

LABELS = {
    "title": "Daily report",
    "equity": "Equity",
    "unrealized": "uPnL",
    "pnl_title": "P&L, last {days} days",
    "liquidation": "Distance to liquidation",
    "no_positions": "No open positions",
    "unknown": "n/a",
    **{f"pnl_{k}": v for k, v in PNL_LABELS.items() if k != "title"},
}

MAX_POSITIONS = 8
CAUTION_DISTANCE = 0.10


def draw_liquidation(ax: Axes, theme: Theme, positions: Sequence[PositionView], labels: dict[str, str]) -> None:
    """Horizontal bars of |mark − liq| / mark, closest first, over shaded danger (< 3 %) and caution (< 10 %)
    zones; the text beside each bar repeats the figure so the colour is not needed to read it."""
    ax.set_title(labels["liquidation"], loc="left")
    if not positions:
        empty_panel(ax, theme, labels["no_positions"])
        return
    ordered = sorted(positions, key=lambda p: (p.liquidation_distance is None,
                                               p.liquidation_distance or 0))[:MAX_POSITIONS]
    dist = np.array([float(p.liquidation_distance) if p.liquidation_distance is not None else np.nan
                     for p in ordered])
    known = dist[np.isfinite(dist)]
    right = max(float(known.max()) * 1.45 if len(known) else 0.0, CAUTION_DISTANCE * 1.5)
    danger = float(DANGER_DISTANCE)
    ax.axvspan(0, danger, color=theme.down, alpha=0.22, lw=0)
    ax.axvspan(danger, CAUTION_DISTANCE, color=theme.down, alpha=0.08, lw=0)
    y = np.arange(len(ordered))[::-1]
    for yi, d, p in zip(y, dist, ordered, strict=True):
        if np.isfinite(d):
            close = d < danger
            ax.barh(yi, d, height=0.6, color=theme.down if close else theme.accent,
                    hatch="//" if close else None, edgecolor=theme.foreground if close else theme.accent, zorder=3)
            text = percent(p.liquidation_distance, 1)
        else:
            d, text = 0.0, labels["unknown"]
        ax.annotate(text, (d, yi), xytext=(6, 0), textcoords="offset points", ha="left", va="center",
                    fontsize=SMALL_PT, color=theme.foreground, fontweight="bold" if d < danger else "normal")
    names = [f"{p.pair.split(':')[0].split('/')[0]} {p.side} {p.leverage or ''}{'x' if p.leverage else ''}".strip()
             for p in ordered]
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlim(0, right)
    ax.grid(axis="y", visible=False)
    percent_axis(ax, "x", nbins=4)


def daily_report_chart(days: Sequence[PeriodPnL], positions: Sequence[PositionView], *,
                       balance: BalanceView | None = None, now: dt.datetime | None = None,
                       theme: str | Theme = "light", tz: str = "UTC", labels: Labels = None,
                       size_px: tuple[int, int] = PORTRAIT) -> bytes:
    """PNG for the daily report from the service's results: ``pnl("day", n, tz)`` rows, ``positions()`` and
    ``balance()`` (optional: a failed balance read still gets a chart)."""
    words = merge_labels(LABELS, labels)
    pnl_words = {**PNL_LABELS, **{k.removeprefix("pnl_"): v for k, v in words.items()
                                  if k.startswith("pnl_") and k != "pnl_title"}}
    figures = daily_figures(balance, days, positions)
    moment = now or dt.datetime.now(dt.timezone.utc)

    def draw(fig: Figure, th: Theme) -> None:
        n = min(len(positions), MAX_POSITIONS)
        ax_head, ax_pnl, ax_liq = fig.subplots(3, 1, gridspec_kw={"height_ratios": [0.55, 3,
                                                                                  max(1.4, 0.5 * n + 0.6)]})
        fig.suptitle(f"{words['title']}  {local_time(moment, tz)}", x=0.02, ha="left", fontsize=TITLE_PT,
                     fontweight="bold", color=th.foreground)
        # Zone and balance on their own lines in a text-only axes: a long zone name must not push the balance
        # off the right edge, and constrained layout only makes room for text that belongs to an axes.
        ax_head.set_axis_off()
        lines = [tz]
        if balance is not None:
            lines.append(f"{words['equity']} {figures.equity} · {words['unrealized']} {figures.unrealized}")
        ax_head.text(0.0, 1.0, "\n".join(lines), transform=ax_head.transAxes, ha="left", va="top",
                     fontsize=BASE_PT, color=th.foreground, linespacing=1.3)
        title = words["pnl_title"].format(days=len(days)) if days else pnl_words["title"]
        draw_daily_pnl(ax_pnl, th, days, pnl_words, title)
        draw_liquidation(ax_liq, th, positions, words)

    return render.render(draw, theme, size_px)
