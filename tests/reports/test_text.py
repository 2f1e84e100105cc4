"""Text summaries carry the right figures, formatted without float drift."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from reports.charts.common import MoneyFormatter, PriceFormatter
from reports.charts.montecarlo import monte_carlo_fan
from reports.series import daily_pnl, decimate, drawdown, pair_performance
from reports.text import format as f
from reports.text.backtest import backtest_rows, backtest_text, montecarlo_rows
from reports.text.daily import daily_figures
from reports.text.positions import position_rows, positions_table
from reports.text.table import as_dict, format_table
from trader.performance.montecarlo import monte_carlo, trade_returns
from trader.service.pnl import PeriodPnL


def test_money_has_no_float_drift() -> None:
    assert f.money(2.675) == "2.68"  # f"{2.675:.2f}" gives 2.67: the binary neighbour
    assert f.money(0.1 + 0.2) == "0.30"
    assert f.money(1234567.891) == "1,234,567.89"
    assert f.money(Decimal("-0.004")) == "0.00"  # never "-0.00"
    assert f.signed(-0.004) == "+0.00"
    assert f.signed(Decimal("-12.345")) == "-12.35"
    assert f.money(None) == f.money(math.nan) == f.money(math.inf) == "-"
    with pytest.raises(TypeError):
        f.money(True)


def test_percent_price_ratio_amount_duration() -> None:
    assert f.percent(0.1234) == "12.34%"
    assert f.percent(-0.29551, 1) == "-29.6%"
    assert f.percent(0.05, sign=True) == "+5.00%"
    assert f.price(Decimal("103250.1")) == "103,250.10"
    assert f.price(2.34567) == "2.3457"
    assert f.price(0.123456789) == "0.123457"
    assert f.ratio(math.inf) == "∞" and f.ratio(math.nan) == "-" and f.ratio(1.23456) == "1.23"
    assert f.amount(Decimal("0.0120")) == "0.012" and f.amount(Decimal("3E+1")) == "30"
    assert f.duration(3 * 86400 + 4 * 3600 + 59) == "3d 4h"
    assert f.duration(2 * 3600 + 5 * 60) == "2h 05m"
    assert f.duration(12 * 60) == "12m"
    assert f.short_pair("BTC/USDT:USDT") == "BTC/USDT"


def test_backtest_rows_carry_the_result(backtest) -> None:
    rows = as_dict(backtest_rows(backtest, "Asia/Shanghai"))
    m = backtest.metrics
    net = Decimal(repr(backtest.final_wallet)) - Decimal(repr(backtest.initial_wallet))
    assert rows["net_profit"] == f"{net.quantize(Decimal('0.01')):+,.2f}"
    assert rows["trades"] == str(len(backtest.trades)) == str(m.trades)
    assert rows["total_return"] == f"{m.total_return * 100:+.2f}%"
    assert rows["max_drawdown"] == f"{m.max_drawdown * 100:.2f}%"
    assert rows["win_rate"] == f"{m.win_rate * 100:.1f}%"
    assert rows["sharpe"] == f"{m.sharpe:.2f}"
    assert rows["fees"] == f"{m.fees_paid:,.2f}"
    assert rows["pairs"] == "BTC/USDT, ETH/USDT, SOL/USDT"
    assert rows["period"] == "2025-05-10 08:00 → 05-17 08:00"  # shipped window in Shanghai time
    assert as_dict(backtest_rows(backtest, "UTC"))["period"] == "2025-05-10 00:00 → 05-17 00:00"


def test_backtest_text_includes_monte_carlo(backtest) -> None:
    mc = monte_carlo(trade_returns(backtest.trades), runs=300, seed=3)
    text = backtest_text(backtest, "UTC", montecarlo=mc)
    rows = as_dict(montecarlo_rows(mc))
    assert rows["mc_ruin"] == f"{mc.probability_of_ruin * 100:.1f}%"
    for line in ("Trades", "Max drawdown", "MC ruin"):
        assert line in text
    assert f"{len(backtest.trades)}" in text
    lines = text.splitlines()
    value_col = {line.index(line.split()[-1]) for line in lines if line.startswith(("Trades ", "Fees "))}
    assert len(value_col) == 1  # values aligned in one column


def test_daily_pnl_and_pair_performance_add_up(backtest) -> None:
    total = sum(t.net_pnl for t in backtest.trades)
    for tz in ("UTC", "Asia/Shanghai"):
        days = daily_pnl(backtest.trades, tz, backtest.start_ms, backtest.end_ms)
        assert [d.start for d in days] == sorted((d.start for d in days), reverse=True)
        assert float(sum(d.net_pnl for d in days)) == pytest.approx(total, abs=1e-6)
        assert sum(d.trades for d in days) == len(backtest.trades)
    assert len(daily_pnl(backtest.trades, "UTC", backtest.start_ms, backtest.end_ms)) == 7
    assert len(daily_pnl(backtest.trades, "Asia/Shanghai", backtest.start_ms, backtest.end_ms)) == 8
    perf = {p.pair: p for p in pair_performance(backtest.trades)}
    for pair, p in perf.items():
        mine = [t for t in backtest.trades if t.pair == pair]
        assert p.trades == len(mine) and p.wins == sum(t.net_pnl > 0 for t in mine)
        assert float(p.net_pnl) == pytest.approx(sum(t.net_pnl for t in mine), abs=1e-6)


def test_drawdown_and_decimate() -> None:
    eq = np.array([100.0, 110, 99, 121, 60, 130])
    assert drawdown(eq, 100.0) == pytest.approx([0, 0, -0.1, 0, 60 / 121 - 1, 0])
    x = np.arange(100_000)
    y = np.sin(x / 500.0)
    y[54_321] = -5.0  # a one-bar spike must survive
    xs, ys = decimate(x, y, 1000)
    assert len(ys) <= 1002 and ys.min() == -5.0 and xs[0] == 0 and xs[-1] == 99_999


def test_monte_carlo_fan_bands(backtest) -> None:
    r = trade_returns(backtest.trades)
    fan = monte_carlo_fan(r, runs=400, seed=1)
    stacked = np.vstack([fan.bands[p] for p in fan.percentiles])
    assert np.all(np.diff(stacked, axis=0) >= -1e-12)  # p5 ≤ p25 ≤ … ≤ p95 at every step
    assert fan.actual[-1] == pytest.approx(np.prod(1 + r) - 1)
    shuffled = monte_carlo_fan(r, runs=200, method="shuffle", seed=1)
    for p in shuffled.percentiles:  # reordering cannot change the product
        assert shuffled.bands[p][-1] == pytest.approx(fan.actual[-1])
    with pytest.raises(ValueError):
        monte_carlo_fan([], runs=10)


def test_position_rows_and_daily_figures(positions, balance) -> None:
    rows = position_rows(positions)
    distances = [p.liquidation_distance for p in positions]
    assert rows[0].distance == f.percent(min(distances))  # closest to liquidation first
    eth = next(r for r in rows if r.pair == "ETH/USDT")
    src = next(p for p in positions if p.pair == "ETH/USDT:USDT")
    assert eth.pnl == f"{src.unrealized_pnl.quantize(Decimal('0.01')):+,.2f}"
    assert eth.leverage == "25x" and eth.side == src.side
    table = positions_table(rows, headers=("pair", "side", "amount", "pnl", "liq"))
    assert len(table.splitlines()) == len(rows) + 1
    days = [PeriodPnL(dt.date(2025, 5, d), Decimal(v), n, w) for d, v, n, w in ((17, "12.5", 3, 2), (16, "-4.25", 2, 0), (15, "0", 0, 0))]
    figures = daily_figures(balance, days, positions)
    assert figures.day_pnl == "+12.50" and figures.day_trades == 3 and figures.day_wins == 2
    assert figures.period_pnl == "+8.25" and figures.period_days == 3 and figures.period_trades == 5
    assert figures.equity == f"{balance.margin_balance.quantize(Decimal('0.01')):,.2f}"
    assert figures.closest_liquidation == rows[0].distance
    assert daily_figures(None, [], []).equity == "-"


def test_format_table_aligns() -> None:
    out = format_table([["a", "1"], ["long label", "1,234.56"]])
    assert out.splitlines() == ["a                  1", "long label  1,234.56"]


def test_money_axis_uses_as_few_decimals_as_the_ticks_need() -> None:
    fmt = MoneyFormatter()
    for locs, expected in (
        ([-80.0, 0.0, 80.0, 160.0], ["-80", "0", "80", "160"]),
        ([7200.0, 8000.0, 8800.0], ["7,200", "8,000", "8,800"]),
        ([0.0, 20000.0, 40000.0], ["0", "20k", "40k"]),
        ([0.0, 0.5, 1.0], ["0", "0.5", "1.0"]),
        ([0.0, 2.5e6, 5e6], ["0", "2.5M", "5.0M"]),
    ):
        fmt.set_locs(locs)
        assert [fmt(v) for v in locs] == expected


def test_price_axis_shows_enough_decimals_to_tell_ticks_apart() -> None:
    fmt = PriceFormatter()
    for locs, expected in (
        ([2320.0, 2340.0, 2360.0], ["2,320", "2,340", "2,360"]),
        ([170.0, 170.5, 171.0], ["170.0", "170.5", "171.0"]),
        ([0.234, 0.2345, 0.235], ["0.2340", "0.2345", "0.2350"]),
    ):
        fmt.set_locs(locs)
        assert [fmt(v) for v in locs] == expected
