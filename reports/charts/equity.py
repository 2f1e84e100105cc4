"""Equity curve with the drawdown beneath it, on one time axis in the user's zone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports import render
from reports.charts.common import Labels, empty_panel, merge_labels, money_axis, percent_axis
from reports.series import decimate, drawdown
from reports.text.format import percent, signed
from reports.theme import PORTRAIT, SMALL_PT, Theme
from reports.timeaxis import ms_to_num, time_axis

LABELS = {
    "title": "Equity",
    "equity": "Equity (USDT)",
    "drawdown": "Drawdown",
    "start": "start",
    "no_data": "No equity data",
}


def draw_equity(ax_eq: Axes, ax_dd: Axes, theme: Theme, timestamps_ms: Sequence[int] | np.ndarray,
                equity: Sequence[float] | np.ndarray, *, initial: float | None, tz: str, labels: dict[str, str],
                title: str | None) -> None:
    """Draw into two axes sharing x; the backtest report reuses this under its metrics table."""
    ts = np.asarray(timestamps_ms, dtype="int64")
    eq = np.asarray(equity, dtype="float64")
    if not len(eq):
        empty_panel(ax_eq, theme, labels["no_data"])
        ax_dd.set_visible(False)
        return
    start = float(initial) if initial is not None else float(eq[0])
    dd = drawdown(eq, start)
    x = ms_to_num(ts)
    xe, ye = decimate(x, eq)
    xd, yd = decimate(x, dd)

    change = eq[-1] - start
    ax_eq.plot(xe, ye, color=theme.accent, lw=2.4, solid_joinstyle="round")
    ax_eq.axhline(start, color=theme.muted, lw=1.2, ls="--")
    ax_eq.fill_between(xe, ye, start, where=ye >= start, color=theme.up, alpha=0.15, interpolate=True, lw=0)
    ax_eq.fill_between(xe, ye, start, where=ye < start, color=theme.down, alpha=0.15, interpolate=True, lw=0)
    ax_eq.set_ylabel(labels["equity"])
    money_axis(ax_eq)
    heading = title or labels["title"]
    ax_eq.set_title(f"{heading}  {signed(change)} ({percent(change / start if start else None, sign=True)})",
                    loc="left", color=theme.up if change >= 0 else theme.down)

    ax_dd.fill_between(xd, yd, 0, color=theme.down, alpha=0.55, lw=0, step="post")
    ax_dd.plot(xd, yd, color=theme.down, lw=1.4, drawstyle="steps-post")
    worst = int(np.argmin(dd))
    ax_dd.annotate(percent(dd[worst], 1), (x[worst], dd[worst]), xytext=(0, -4), textcoords="offset points",
                   ha="center", va="top", fontsize=SMALL_PT, color=theme.foreground, annotation_clip=False)
    low = float(min(dd.min(), -0.001))
    ax_dd.set_ylim(low * 1.35, 0)
    ax_dd.set_ylabel(labels["drawdown"])
    percent_axis(ax_dd, nbins=3)
    half_hour = 1 / 48  # a single point still gets a readable hour-wide axis
    ax_dd.set_xlim(x[0] - (half_hour if x[0] == x[-1] else 0), x[-1] + (half_hour if x[0] == x[-1] else 0))
    time_axis(ax_dd, tz)
    ax_eq.tick_params(labelbottom=False)


def equity_chart(timestamps_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray, *,
                 initial: float | None = None, theme: str | Theme = "light", tz: str = "UTC",
                 title: str | None = None, labels: Labels = None, size_px: tuple[int, int] = PORTRAIT) -> bytes:
    """PNG of an equity curve (UTC ms timestamps) with its drawdown below; ``initial`` is the starting wallet
    (the first equity point when omitted)."""
    return render.render(_drawer(timestamps_ms, equity, initial, tz, title, labels), theme, size_px)


def equity_figure(timestamps_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray, *,
                  initial: float | None = None, theme: str | Theme = "light", tz: str = "UTC",
                  title: str | None = None, labels: Labels = None, size_px: tuple[int, int] = PORTRAIT) -> Figure:
    return render.build(_drawer(timestamps_ms, equity, initial, tz, title, labels), theme, size_px)


def _drawer(timestamps_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray,
            initial: float | None, tz: str, title: str | None, labels: Labels) -> render.Draw:
    words = merge_labels(LABELS, labels)

    def draw(fig: Figure, theme: Theme) -> None:
        ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
        draw_equity(ax_eq, ax_dd, theme, timestamps_ms, equity, initial=initial, tz=tz, labels=words, title=title)

    return draw
