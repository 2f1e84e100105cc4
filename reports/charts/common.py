"""Small drawing helpers shared by the charts: labels with overrides, value axes, the empty-data panel."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from reports.text.format import number, percent
from reports.theme import BASE_PT, Theme

Labels = Mapping[str, str] | None


def merge_labels(defaults: Mapping[str, str], labels: Labels) -> dict[str, str]:
    """English defaults, overridden key by key by the caller's translations; unknown keys are a caller bug."""
    out = dict(defaults)
    if labels:
        unknown = set(labels) - set(defaults)
        if unknown:
            raise KeyError(f"unknown chart label keys: {sorted(unknown)}")
        out.update(labels)
    return out


def money_axis(ax: Axes, axis: str = "y", nbins: int = 5) -> None:
    """Compact money ticks: 12,345 / 1.2k / 3.4M; the exact figures are in the text, the axis shows shape."""
    def fmt(v: float, _pos: int | None) -> str:
        a = abs(v)
        if a < 1e-9:
            return "0"
        if a >= 1e6:
            return number(v / 1e6, 1) + "M"
        if a >= 1e4:
            return number(v / 1e3, 1) + "k"
        if a >= 100:
            return number(v, 0)
        return number(v, 2 if a < 10 else 1)

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(fmt))
    target.set_major_locator(MaxNLocator(nbins=nbins))


def percent_axis(ax: Axes, axis: str = "y", nbins: int = 4) -> None:
    def fmt(v: float, _pos: int | None) -> str:
        text = percent(v, 1)
        return text.replace(".0%", "%")  # "4%", "2.5%": no decimal unless the tick needs one

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(fmt))
    target.set_major_locator(MaxNLocator(nbins=nbins))


def empty_panel(ax: Axes, theme: Theme, message: str) -> None:
    """A chart with nothing to plot still goes out: saying so is better than a missing photo."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=BASE_PT * 1.2,
            color=theme.muted)


def finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype="float64")
    return v[np.isfinite(v)]
