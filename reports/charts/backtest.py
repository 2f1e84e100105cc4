"""The compact backtest report: one tall image with the run's header, a metrics table and the equity curve.

The table is drawn as text in an empty axes rather than with ``matplotlib.table`` so the font size stays at
14 pt whatever the cell count (``Table`` shrinks text to fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from reports import render
from reports.charts.common import Labels, merge_labels
from reports.charts.equity import LABELS as EQUITY_LABELS
from reports.charts.equity import draw_equity
from reports.charts.montecarlo import monte_carlo_chart, monte_carlo_fan
from reports.charts.pairs import pair_performance_chart
from reports.charts.pnl import daily_pnl_chart
from reports.series import daily_pnl, pair_performance
from reports.text.backtest import HEADLINE, backtest_rows, montecarlo_rows
from reports.text.backtest import LABELS as TEXT_LABELS
from reports.text.table import Row, as_dict
from reports.theme import BASE_PT, TALL, TITLE_PT, Theme
from trader.performance.montecarlo import trade_returns

LABELS = {**TEXT_LABELS, **{f"equity_{k}": v for k, v in EQUITY_LABELS.items()}, "report": "Backtest"}

_GOOD_WHEN_POSITIVE = {"net_profit", "total_return", "expectancy"}


def draw_table(ax: Axes, theme: Theme, rows: Sequence[Row], labels: dict[str, str], columns: int = 2) -> None:
    """Label/value pairs in ``columns`` blocks, alternate rows shaded; signed results coloured and signed."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    per_col = -(-len(rows) // columns)
    ax.set_ylim(per_col, 0)
    width = 1 / columns
    for i, row in enumerate(rows):
        col, line = divmod(i, per_col)
        x0 = col * width
        if line % 2 == 0:
            ax.add_patch(Rectangle((x0 + 0.005, line), width - 0.01, 1, facecolor=theme.grid, alpha=0.45,
                                   edgecolor="none"))
        colour = theme.foreground
        if row.key in _GOOD_WHEN_POSITIVE and row.value.startswith(("+", "-")):
            colour = theme.up if row.value.startswith("+") else theme.down
        ax.text(x0 + 0.02, line + 0.5, labels.get(row.key, row.key), ha="left", va="center", fontsize=BASE_PT,
                color=theme.muted)
        ax.text(x0 + width - 0.02, line + 0.5, row.value, ha="right", va="center", fontsize=BASE_PT,
                color=colour, fontweight="bold")


def backtest_report_chart(result: Any, *, montecarlo: Any | None = None, theme: str | Theme = "light",
                          tz: str = "UTC", title: str | None = None, labels: Labels = None,
                          size_px: tuple[int, int] = TALL) -> bytes:
    """PNG of a ``BacktestResult``: header, headline metrics (plus Monte Carlo ones when given), equity and
    drawdown in the user's zone."""
    words = merge_labels(LABELS, labels)
    rows = backtest_rows(result, tz)
    head = as_dict(rows)
    table = [r for r in rows if r.key in HEADLINE]
    if montecarlo is not None:
        table += [r for r in montecarlo_rows(montecarlo) if r.key in ("mc_final_p5", "mc_max_dd_p5")]
    eq_words = {k.removeprefix("equity_"): v for k, v in words.items() if k.startswith("equity_")}

    def draw(fig: Figure, th: Theme) -> None:
        per_col = -(-len(table) // 2)
        # Two subfigures: the table spans the full width instead of aligning with the equity axes' y label.
        top, bottom = fig.subfigures(2, 1, height_ratios=[per_col * 0.42 + 1.1, 4.6])
        top.suptitle(f"{title or words['report']}: {head['strategy']}", x=0.02, ha="left", fontsize=TITLE_PT,
                     fontweight="bold", color=th.foreground)
        ax_tab = top.subplots()
        ax_tab.set_title(f"{head['pairs']} · {head['timeframe']} · {head['leverage']}\n{head['period']} ({tz})",
                         loc="left", fontsize=BASE_PT, fontweight="normal", color=th.foreground, linespacing=1.3)
        draw_table(ax_tab, th, table, words)
        ax_eq, ax_dd = bottom.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
        draw_equity(ax_eq, ax_dd, th, result.equity_ms, result.equity, initial=result.initial_wallet, tz=tz,
                    labels=eq_words, title=eq_words["title"])

    return render.render(draw, theme, size_px)


def backtest_pngs(result: Any, *, montecarlo: Any | None = None, theme: str | Theme = "light", tz: str = "UTC",
                  mc_runs: int = 1000, seed: int | None = 0,
                  labels: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, bytes]:
    """Every chart of a backtest answer, keyed: "report", "daily_pnl", "pairs" and, when the run has trades,
    "montecarlo". The bot sends them as one album after the text summary. ``labels`` holds translations per chart
    key (each chart's ``LABELS`` names the keys it takes)."""
    words = labels or {}
    out = {
        "report": backtest_report_chart(result, montecarlo=montecarlo, theme=theme, tz=tz,
                                        labels=words.get("report")),
        "daily_pnl": daily_pnl_chart(daily_pnl(result.trades, tz, result.start_ms, result.end_ms), theme=theme,
                                     labels=words.get("daily_pnl")),
        "pairs": pair_performance_chart(pair_performance(result.trades), theme=theme, labels=words.get("pairs")),
    }
    returns = trade_returns(result.trades)
    if len(returns):
        method = montecarlo.method if montecarlo is not None else "bootstrap"
        fan = monte_carlo_fan(returns, runs=mc_runs, method=method, seed=seed)
        out["montecarlo"] = monte_carlo_chart(fan, summary=montecarlo, theme=theme, labels=words.get("montecarlo"))
    return out
