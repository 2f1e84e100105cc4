"""Monte Carlo fan: percentile bands of compounded equity over the trade sequence, with the actual path.

``trader.performance.montecarlo`` keeps only end-of-run percentiles (it runs 10 000 paths and must stay lean),
so the fan recomputes paths here the same way: each trade's net return on equity, compounded; ``shuffle``
reorders the trades (every path ends at the same value — only the route and drawdowns move), ``bootstrap``
draws them with replacement (the ends spread too). The default is bootstrap because a fan that pinches shut at
the end confuses readers; pass the method of the ``MonteCarloResult`` shown beside it to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports import render
from reports.charts.common import Labels, merge_labels, percent_axis
from reports.text.format import percent
from reports.theme import SMALL_PT, SQUARE, Theme
from trader.performance.montecarlo import MonteCarloResult

LABELS = {
    "title": "Monte Carlo",
    "actual": "actual",
    "median": "median",
    "trades": "trade #",
    "return": "Return",
    "runs": "runs",
    "ruin": "ruin",
    "final": "final",
    "max_dd": "max DD",
}

BANDS = ((5, 95), (25, 75))


@dataclass(frozen=True)
class Fan:
    method: str
    runs: int
    steps: np.ndarray  # 0..n trades
    bands: dict[int, np.ndarray]  # percentile -> cumulative return (fraction) at each step
    actual: np.ndarray  # the real order of the trades

    @property
    def percentiles(self) -> tuple[int, ...]:
        return tuple(sorted(self.bands))


def monte_carlo_fan(trade_returns: Sequence[float] | np.ndarray, runs: int = 1000,
                    method: Literal["shuffle", "bootstrap"] = "bootstrap", seed: int | None = 0,
                    percentiles: Sequence[int] = (5, 25, 50, 75, 95)) -> Fan:
    """Percentile paths of ``runs`` resampled trade sequences. 1000 runs × a few hundred trades is milliseconds;
    the bands are smooth enough for a phone-sized chart."""
    r = np.asarray(trade_returns, dtype="float64")
    r = r[np.isfinite(r)]
    if r.ndim != 1 or not len(r):
        raise ValueError("need at least one trade return")
    r = np.maximum(r, -1.0)  # as trader.performance.montecarlo: a trade cannot lose more than the equity
    rng = np.random.default_rng(seed)
    if method == "shuffle":
        block = rng.permuted(np.broadcast_to(r, (runs, len(r))), axis=1)
    elif method == "bootstrap":
        block = rng.choice(r, size=(runs, len(r)), replace=True)
    else:
        raise ValueError(f"unknown Monte Carlo method {method!r}")
    growth = np.concatenate([np.ones((runs, 1)), np.cumprod(1.0 + block, axis=1)], axis=1)
    bands = {int(p): np.percentile(growth, p, axis=0) - 1.0 for p in percentiles}
    actual = np.r_[1.0, np.cumprod(1.0 + r)] - 1.0
    return Fan(method, runs, np.arange(len(r) + 1), bands, actual)


def draw_fan(ax: Axes, theme: Theme, fan: Fan, summary: MonteCarloResult | None, labels: dict[str, str],
             title: str | None) -> None:
    ax.set_title(f"{title or labels['title']}  ({fan.method}, {fan.runs:,} {labels['runs']})", loc="left")
    x = fan.steps
    # Darker inner band, lighter outer one: the likely region stands out even in greyscale.
    for (lo, hi), alpha in zip(BANDS, theme.band_alpha, strict=True):
        if lo in fan.bands and hi in fan.bands:
            ax.fill_between(x, fan.bands[lo], fan.bands[hi], color=theme.band, alpha=alpha, lw=0,
                            label=f"p{lo}–p{hi}")
    if 50 in fan.bands:
        ax.plot(x, fan.bands[50], color=theme.band, lw=2.0, ls="--", label=labels["median"])
    ax.plot(x, fan.actual, color=theme.foreground, lw=2.4, label=labels["actual"])
    ax.axhline(0, color=theme.muted, lw=1.0)
    for p in (5, 95):
        if p in fan.bands:
            v = fan.bands[p][-1]
            ax.annotate(f"p{p} {percent(v, 1, sign=True)}", (x[-1], v), xytext=(-4, 6 if p == 95 else -6),
                        textcoords="offset points", ha="right", va="bottom" if p == 95 else "top",
                        fontsize=SMALL_PT, color=theme.foreground)
    ax.set_xlim(0, x[-1])
    every = np.concatenate([fan.actual, *fan.bands.values(), [0.0]])
    lo, hi = float(every.min()), float(every.max())
    pad = (hi - lo or 0.01) * 0.1  # room for the end labels above and below the fan
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(labels["trades"])
    ax.set_ylabel(labels["return"])
    percent_axis(ax, nbins=5)
    ax.legend(loc="upper left", ncols=2, handlelength=1.4, columnspacing=0.8)
    if summary is not None:
        fr, dd = summary.final_return, summary.max_drawdown
        text = (f"{summary.method}, {summary.runs:,} {labels['runs']}\n"
                f"{labels['final']} p5/p50/p95: {percent(fr.get('p5'), 1)} / {percent(fr.get('p50'), 1)} / "
                f"{percent(fr.get('p95'), 1)}\n"
                f"{labels['max_dd']} p50/p5: {percent(dd.get('p50'), 1)} / {percent(dd.get('p5'), 1)}   "
                f"{labels['ruin']}: {percent(summary.probability_of_ruin, 1)}")
        ax.text(0.0, -0.2, text, transform=ax.transAxes, ha="left", va="top", fontsize=SMALL_PT,
                color=theme.foreground, linespacing=1.3)


def monte_carlo_chart(fan: Fan, *, summary: MonteCarloResult | None = None, theme: str | Theme = "light",
                      title: str | None = None, labels: Labels = None, size_px: tuple[int, int] = SQUARE) -> bytes:
    """PNG of a ``Fan``; with ``summary`` (the engine's ``monte_carlo`` result) its headline figures are
    printed under the chart."""
    words = merge_labels(LABELS, labels)

    def draw(fig: Figure, th: Theme) -> None:
        draw_fan(fig.subplots(), th, fan, summary, words, title)

    return render.render(draw, theme, size_px)
