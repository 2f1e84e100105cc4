"""Candlesticks of one pair with trade entries, exits and stop levels.

Candles are drawn by hand (a wick line and a body rectangle each): rising candles hollow, falling filled, so the
direction reads without colour. Long entries are upward triangles, short entries downward ones; exits are
circles, stop exits crosses; stop prices are dashed lines (over the trade's life, or across the chart for an open
position). More candles than a phone can show are merged into a longer timeframe rather than squeezed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reports import render
from reports.charts.common import Labels, PriceFormatter, empty_panel, merge_labels
from reports.text.format import price, short_pair
from reports.theme import PORTRAIT, SMALL_PT, Theme
from reports.timeaxis import ms_to_num, time_axis
from trader.data.store import resample
from trader.data.timeframes import timeframe_ms
from trader.service.views import PositionView

LABELS = {
    "long_entry": "long entry",
    "short_entry": "short entry",
    "exit": "exit",
    "stop_exit": "stop exit",
    "stop": "stop",
    "entry": "entry",
    "liquidation": "liq.",
    "no_data": "No candles",
}

# Timeframes tried, shortest first, when there are too many candles for the width.
_LADDER = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
STOP_REASONS = {"stop", "stop_breakeven", "stop_trail", "liquidation", "stop_loss", "trailing_stop_loss"}


@dataclass(frozen=True)
class TradeMark:
    """One trade on the chart; prices as floats or Decimals, times in UTC ms. ``close_ms`` None: still open."""

    side: str  # long | short
    open_ms: int
    entry_price: float | Decimal
    close_ms: int | None = None
    exit_price: float | Decimal | None = None
    stop_price: float | Decimal | None = None
    exit_reason: str | None = None

    @property
    def stopped(self) -> bool:
        return (self.exit_reason or "") in STOP_REASONS


@dataclass(frozen=True)
class Level:
    """A horizontal price across the whole chart: an open position's entry, stop or liquidation price."""

    price: float | Decimal
    kind: str  # entry | stop | liquidation


def marks_from_backtest(trades: Iterable[Any], pair: str) -> list[TradeMark]:
    """``TradeRecord``s of ``pair``. The backtester does not record the stop price, so stopped exits are marked
    by their exit reason (a cross) rather than by a stop line."""
    out = []
    for t in trades:
        if getattr(t, "pair", None) != pair:
            continue
        out.append(TradeMark(side=t.side, open_ms=int(t.open_ms), entry_price=t.entry_price,
                             close_ms=int(t.close_ms) or None, exit_price=t.exit_price or None,
                             exit_reason=t.exit_reason or None))
    return out


def marks_from_views(trades: Iterable[Any], pair: str) -> list[TradeMark]:
    """The service's ``TradeView``s of ``pair`` (aware datetimes, Decimal prices, the stop that was set)."""
    out = []
    for v in trades:
        if getattr(v, "pair", None) != pair:
            continue
        close = v.close_date
        out.append(TradeMark(side=v.side, open_ms=int(v.open_date.timestamp() * 1000),
                             entry_price=v.open_rate,
                             close_ms=int(close.timestamp() * 1000) if close is not None else None,
                             exit_price=v.close_rate, stop_price=v.stop_price,
                             exit_reason=v.exit_reason))
    return out


def levels_from_position(position: PositionView) -> list[Level]:
    """Entry, stop and liquidation lines of a ``PositionView``."""
    out = [Level(position.entry_price, "entry")]
    if position.stop_price is not None:
        out.append(Level(position.stop_price, "stop"))
    if position.liquidation_price is not None:
        out.append(Level(position.liquidation_price, "liquidation"))
    return out


def infer_timeframe(timestamps_ms: np.ndarray) -> str:
    step = int(np.median(np.diff(timestamps_ms))) if len(timestamps_ms) > 1 else 60_000
    for tf in _LADDER:
        if timeframe_ms(tf) == step:
            return tf
    raise ValueError(f"candles {step} ms apart are not a standard timeframe")


def fit_candles(candles: pd.DataFrame, max_candles: int) -> tuple[pd.DataFrame, str]:
    """The frame in the shortest standard timeframe that needs at most ``max_candles`` bars."""
    ts = candles["timestamp"].to_numpy(dtype="int64")
    tf = infer_timeframe(ts)
    span = int(ts[-1] - ts[0]) + timeframe_ms(tf) if len(ts) else 0
    if len(candles) <= max_candles:
        return candles.reset_index(drop=True), tf
    for target in _LADDER[_LADDER.index(tf) + 1:]:
        if timeframe_ms(target) % timeframe_ms(tf) == 0 and span / timeframe_ms(target) <= max_candles:
            return resample(candles, tf, target), target
    return resample(candles, tf, _LADDER[-1]).tail(max_candles).reset_index(drop=True), _LADDER[-1]


def _f(v: float | Decimal | None) -> float | None:
    return None if v is None else float(v)


def draw_candles(ax: Axes, theme: Theme, candles: pd.DataFrame, timeframe: str, tz: str) -> tuple[float, float]:
    """Bodies and wicks; returns the x span (matplotlib date numbers) of the bars."""
    x = ms_to_num(candles["timestamp"].to_numpy(dtype="int64"))
    width = timeframe_ms(timeframe) / 86_400_000
    xc = x + width / 2  # a candle spans its period; its centre sits half a period after the open
    o, h, lo, c = (candles[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close"))
    up = c >= o
    colours = np.where(up, theme.up, theme.down)
    ax.add_collection(LineCollection(np.stack([np.c_[xc, lo], np.c_[xc, h]], axis=1), colors=colours,
                                     linewidths=1.3, zorder=2))
    half = width * 0.36
    bottom, top = np.minimum(o, c), np.maximum(o, c)
    # A doji still gets a visible body: at least 1/400 of the price range.
    min_h = (np.nanmax(h) - np.nanmin(lo)) / 400 if len(h) else 0
    top = np.maximum(top, bottom + min_h)
    verts = [[(a - half, b), (a - half, t), (a + half, t), (a + half, b)] for a, b, t in zip(xc, bottom, top,
                                                                                           strict=True)]
    faces = np.where(up, theme.panel, theme.down)
    ax.add_collection(PolyCollection(verts, facecolors=faces, edgecolors=colours, linewidths=1.3, zorder=3))
    x0, x1 = float(x[0]), float(x[-1] + width)
    ax.set_xlim(x0, x1)
    pad = (np.nanmax(h) - np.nanmin(lo)) * 0.06
    ax.set_ylim(np.nanmin(lo) - pad, np.nanmax(h) + pad)
    time_axis(ax, tz)
    return x0, x1


def candle_chart(candles: pd.DataFrame, pair: str, *, trades: Sequence[TradeMark] = (),
                 levels: Sequence[Level] = (), theme: str | Theme = "light", tz: str = "UTC",
                 max_candles: int = 90, title: str | None = None, labels: Labels = None,
                 size_px: tuple[int, int] = PORTRAIT) -> bytes:
    """PNG of ``candles`` (timestamp ms UTC, open, high, low, close) with trades and price levels marked."""
    return render.render(_drawer(candles, pair, trades, levels, tz, max_candles, title, labels), theme, size_px)


def candle_figure(candles: pd.DataFrame, pair: str, *, trades: Sequence[TradeMark] = (),
                  levels: Sequence[Level] = (), theme: str | Theme = "light", tz: str = "UTC",
                  max_candles: int = 90, title: str | None = None, labels: Labels = None,
                  size_px: tuple[int, int] = PORTRAIT) -> Figure:
    return render.build(_drawer(candles, pair, trades, levels, tz, max_candles, title, labels), theme, size_px)


def _drawer(candles: pd.DataFrame, pair: str, trades: Sequence[TradeMark], levels: Sequence[Level], tz: str,
            max_candles: int, title: str | None, labels: Labels) -> render.Draw:
    words = merge_labels(LABELS, labels)

    def draw(fig: Figure, theme: Theme) -> None:
        ax = fig.subplots()
        if candles is None or not len(candles):
            ax.set_title(title or short_pair(pair), loc="left")
            empty_panel(ax, theme, words["no_data"])
            return
        frame, tf = fit_candles(candles, max_candles)
        x0, x1 = draw_candles(ax, theme, frame, tf, tz)
        last = float(frame["close"].iloc[-1])
        ax.set_title(f"{title or short_pair(pair)}  {tf}  {price(last)}", loc="left")
        ax.yaxis.set_major_formatter(PriceFormatter())
        ax.yaxis.tick_right()
        ax.spines["right"].set_visible(True)
        ax.spines["left"].set_visible(False)
        shown = [t for t in trades if _bar_x(int(t.open_ms), frame, tf) is not None
                 or (t.close_ms is not None and _bar_x(int(t.close_ms), frame, tf) is not None)]
        _draw_trades(ax, theme, shown, frame, tf, x0, x1)
        _draw_levels(ax, theme, levels, words, x1)
        handles = _legend(theme, words, shown, levels)
        if handles:
            # Below the plot, not on it: on a phone every candle is needed.
            fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=SMALL_PT,
                       handletextpad=0.3, columnspacing=0.9, frameon=False)

    return draw


def _bar_x(ms: int, frame: pd.DataFrame, tf: str) -> float | None:
    """Centre of the candle containing ``ms``, or None when it is off the chart."""
    step = timeframe_ms(tf)
    start = int(frame["timestamp"].iloc[0])
    end = int(frame["timestamp"].iloc[-1]) + step
    if not start <= ms < end:
        return None
    return float(ms_to_num((ms // step) * step)) + step / 86_400_000 / 2


def _draw_trades(ax: Axes, theme: Theme, trades: Sequence[TradeMark], frame: pd.DataFrame, tf: str,
                 x0: float, x1: float) -> None:
    size = 150
    edge = theme.foreground
    for t in trades:
        xo = _bar_x(int(t.open_ms), frame, tf)
        xc = _bar_x(int(t.close_ms), frame, tf) if t.close_ms is not None else None
        colour = theme.up if t.side == "long" else theme.down
        if xo is not None:
            ax.scatter([xo], [float(t.entry_price)], marker="^" if t.side == "long" else "v", s=size, c=colour,
                       edgecolors=edge, linewidths=1.2, zorder=5)
        if xc is not None and t.exit_price is not None:
            if t.stopped:
                ax.scatter([xc], [float(t.exit_price)], marker="X", s=size, c=theme.stop, edgecolors=edge,
                           linewidths=1.0, zorder=5)
            else:
                ax.scatter([xc], [float(t.exit_price)], marker="o", s=size * 0.8, c=theme.panel,
                           edgecolors=colour, linewidths=2.2, zorder=5)
        if xo is not None and xc is not None and t.exit_price is not None:
            ax.plot([xo, xc], [float(t.entry_price), float(t.exit_price)], color=colour, lw=1.4, ls=":", zorder=4)
        if t.stop_price is not None and (xo is not None or xc is not None):
            a = xo if xo is not None else x0
            b = xc if xc is not None else x1
            ax.plot([a, b], [float(t.stop_price)] * 2, color=theme.stop, lw=2.0, ls="--", zorder=4)
            _include(ax, float(t.stop_price))


def _draw_levels(ax: Axes, theme: Theme, levels: Sequence[Level], words: dict[str, str], x1: float) -> None:
    styles = {"entry": (theme.accent, "-"), "stop": (theme.stop, "--"), "liquidation": (theme.down, "-.")}
    for lv in levels:
        colour, ls = styles.get(lv.kind, (theme.muted, ":"))
        p = float(lv.price)
        ax.axhline(p, color=colour, lw=2.0, ls=ls, zorder=4)
        ax.annotate(f"{words.get(lv.kind, lv.kind)} {price(lv.price)}", (x1, p), xytext=(-6, 4),
                    textcoords="offset points", ha="right", va="bottom", fontsize=SMALL_PT, color=colour,
                    bbox={"boxstyle": "round,pad=0.15", "fc": theme.panel, "ec": "none", "alpha": 0.8}, zorder=6)
        _include(ax, p)


def _include(ax: Axes, y: float) -> None:
    """Widen the y range so a stop or liquidation price far from the candles is still on the chart."""
    lo, hi = ax.get_ylim()
    pad = (hi - lo) * 0.04
    if y < lo + pad:
        ax.set_ylim(y - pad, hi)
    elif y > hi - pad:
        ax.set_ylim(lo, y + pad)


def _legend(theme: Theme, words: dict[str, str], trades: Sequence[TradeMark], levels: Sequence[Level],
            ) -> list[Line2D]:
    def marker(m: str, face: str, edge: str, label: str) -> Line2D:
        return Line2D([], [], ls="none", marker=m, markersize=11, markerfacecolor=face, markeredgecolor=edge,
                      label=label)

    handles = []
    if any(t.side == "long" for t in trades):
        handles.append(marker("^", theme.up, theme.foreground, words["long_entry"]))
    if any(t.side == "short" for t in trades):
        handles.append(marker("v", theme.down, theme.foreground, words["short_entry"]))
    if any(t.close_ms is not None and not t.stopped for t in trades):
        handles.append(marker("o", theme.panel, theme.foreground, words["exit"]))
    if any(t.stopped for t in trades):
        handles.append(marker("X", theme.stop, theme.foreground, words["stop_exit"]))
    if any(t.stop_price is not None for t in trades) or any(lv.kind == "stop" for lv in levels):
        handles.append(Line2D([], [], color=theme.stop, ls="--", lw=2.0, label=words["stop"]))
    return handles
