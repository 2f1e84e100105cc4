"""A backtest result as rows of formatted figures, and as a plain-text summary in English.

The bot translates the row keys through its catalog; the CLI and logs use ``backtest_text`` as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.text.format import DASH, duration, local_time, money, number, percent, ratio, short_pair, signed
from reports.text.table import Row, format_table, label_rows

LABELS = {
    "strategy": "Strategy",
    "pairs": "Pairs",
    "period": "Period",
    "timeframe": "Timeframe",
    "bars": "Bars",
    "leverage": "Leverage",
    "wallet": "Wallet",
    "net_profit": "Net profit",
    "total_return": "Total return",
    "annual_return": "Annual return",
    "max_drawdown": "Max drawdown",
    "drawdown_duration": "DD duration",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "trades": "Trades",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy",
    "avg_holding": "Avg holding",
    "exposure": "Exposure",
    "fees": "Fees",
    "funding": "Funding",
    "liquidations": "Liquidations",
    "mc_final_p5": "MC final p5",
    "mc_final_p50": "MC final p50",
    "mc_final_p95": "MC final p95",
    "mc_max_dd_p5": "MC max DD p5",
    "mc_ruin": "MC ruin",
}

# The rows of the compact report image: what a phone screen has room for.
HEADLINE = ("net_profit", "total_return", "max_drawdown", "sharpe", "sortino", "calmar", "trades", "win_rate",
            "profit_factor", "expectancy", "exposure", "fees", "funding", "liquidations")


def period_text(start_ms: int, end_ms: int, tz: str) -> str:
    """"2025-05-10 08:00 → 05-17 08:00": the year is not repeated when it does not change."""
    a = local_time(int(start_ms), tz)
    same_year = local_time(int(start_ms), tz, "%Y") == local_time(int(end_ms), tz, "%Y")
    b = local_time(int(end_ms), tz, "%m-%d %H:%M" if same_year else "%Y-%m-%d %H:%M")
    return f"{a} → {b}"


def backtest_rows(result: Any, tz: str = "UTC") -> list[Row]:
    """Every figure of a ``BacktestResult`` worth reading, keyed, formatted; the period in the user's zone."""
    m = result.metrics
    net = result.final_wallet - result.initial_wallet
    dd_days = m.max_drawdown_duration_days
    return [
        Row("strategy", str(result.strategy)),
        Row("pairs", ", ".join(short_pair(p) for p in result.pairs)),
        Row("period", period_text(result.start_ms, result.end_ms, tz)),
        Row("timeframe", str(result.timeframe)),
        Row("bars", number(result.bars, 0)),
        Row("leverage", f"{result.leverage}x"),
        Row("wallet", f"{money(result.initial_wallet)} → {money(result.final_wallet)}"),
        Row("net_profit", signed(net)),
        Row("total_return", percent(m.total_return, sign=True)),
        Row("annual_return", percent(m.annual_return, sign=True)),
        Row("max_drawdown", percent(m.max_drawdown)),
        Row("drawdown_duration", duration(dd_days * 86_400) if dd_days is not None else DASH),
        Row("sharpe", ratio(m.sharpe)),
        Row("sortino", ratio(m.sortino)),
        Row("calmar", ratio(m.calmar)),
        Row("trades", number(m.trades, 0)),
        Row("win_rate", percent(m.win_rate, 1)),
        Row("profit_factor", ratio(m.profit_factor)),
        Row("expectancy", signed(m.expectancy)),
        Row("avg_holding", duration(m.avg_holding_minutes * 60)),
        Row("exposure", percent(m.exposure, 1)),
        Row("fees", money(m.fees_paid)),
        # The engine reports funding paid (positive = cost); the summary shows it as cash flow like the P&L.
        Row("funding", signed(-m.funding_paid)),
        Row("liquidations", number(m.liquidations, 0)),
    ]


def montecarlo_rows(mc: Any) -> list[Row]:
    """Headline figures of a ``MonteCarloResult``."""
    fr, dd = mc.final_return, mc.max_drawdown
    return [
        Row("mc_final_p5", percent(fr.get("p5"), sign=True)),
        Row("mc_final_p50", percent(fr.get("p50"), sign=True)),
        Row("mc_final_p95", percent(fr.get("p95"), sign=True)),
        Row("mc_max_dd_p5", percent(dd.get("p5"))),
        Row("mc_ruin", percent(mc.probability_of_ruin, 1)),
    ]


def backtest_text(result: Any, tz: str = "UTC", montecarlo: Any | None = None,
                  labels: Mapping[str, str] | None = None) -> str:
    """Aligned label/value lines, for a console or a Telegram ``<pre>`` block."""
    words = {**LABELS, **(labels or {})}
    rows = backtest_rows(result, tz)
    if montecarlo is not None:
        rows += montecarlo_rows(montecarlo)
    return format_table([[label, value] for label, value in label_rows(rows, words)], align="ll")
