"""Small drawing helpers shared by the charts: labels with overrides, value axes, the empty-data panel."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import Formatter, FuncFormatter, MaxNLocator

from reports.text.format import number, percent
from reports.theme import BASE_PT, Theme, can_render

Labels = Mapping[str, str] | None


def merge_labels(defaults: Mapping[str, str], labels: Labels) -> dict[str, str]:
    """English defaults, overridden key by key by the caller's translations; unknown keys are a caller bug.

    A translation the installed fonts cannot draw keeps the English label: readable beats boxes."""
    out = dict(defaults)
    if labels:
        unknown = set(labels) - set(defaults)
        if unknown:
            raise KeyError(f"unknown chart label keys: {sorted(unknown)}")
        out.update({k: v for k, v in labels.items() if can_render(v)})
    return out


class MoneyFormatter(Formatter):
    """Compact money ticks: 12,345 / 1.2k / 3.4M, with as few decimals as the tick spacing needs (80, not 80.0).
    The exact figures are in the text; the axis shows shape."""

    _ticks: np.ndarray = np.empty(0)

    def set_locs(self, locs: list[float]) -> None:
        # Kept here: ``Formatter.locs`` is deprecated (matplotlib 3.11) and its private name may change.
        super().set_locs(locs)
        self._ticks = np.asarray(locs, dtype=float)

    def __call__(self, x: float, pos: int | None = None) -> str:
        locs = self._ticks if len(self._ticks) else np.asarray([x], dtype=float)
        big = float(np.max(np.abs(locs)))
        scale, suffix = (1e6, "M") if big >= 1e6 else (1e3, "k") if big >= 1e4 else (1.0, "")
        scaled = locs / scale
        step = float(np.min(np.diff(np.sort(scaled)))) if len(scaled) > 1 else abs(float(scaled[0])) or 1.0
        places = 0 if step >= 1 and np.allclose(scaled, np.round(scaled)) else 1 if step >= 0.1 else 2
        if abs(x) < 1e-9 * max(big, 1.0):
            return "0"
        return number(x / scale, places) + suffix


class PriceFormatter(Formatter):
    """Prices with grouping and just enough decimals to tell neighbouring ticks apart (2,400 / 171.5 / 0.2345)."""

    _ticks: np.ndarray = np.empty(0)

    def set_locs(self, locs: list[float]) -> None:
        super().set_locs(locs)
        self._ticks = np.asarray(locs, dtype=float)

    def __call__(self, x: float, pos: int | None = None) -> str:
        ticks = np.sort(self._ticks)
        step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else 0.0
        if step <= 0:
            return number(x, 2)
        places = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
        return number(x, min(places, 8))


def money_axis(ax: Axes, axis: str = "y", nbins: int = 5) -> None:
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(MoneyFormatter())
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

