"""Metrics against empyrical-reloaded on the same return series, and trade statistics by hand."""

from __future__ import annotations

from dataclasses import dataclass

import empyrical as ep
import numpy as np
import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.performance import metrics as m

DAY = 86_400_000


@pytest.fixture(scope="module")
def real_returns() -> np.ndarray:
    """Daily returns of a real backtest's equity curve (ETH, a month of 1m bars, milder risk)."""
    s, e = parse_timerange("20250504-20250603")
    res = run_backtest(BacktestRequest(pairs=("ETH",), start_ms=s, end_ms=e,
                                       strategy_params={"risk_per_trade": 0.002, "time_stop_bars": 240}))
    r = m.period_returns(res.equity_ms, res.equity, res.initial_wallet)
    assert len(r) >= 28 and np.std(r) > 0
    return r


def _series():
    rng = np.random.default_rng(7)
    return [rng.normal(0.001, 0.02, 500), rng.normal(-0.002, 0.05, 60), np.array([0.01, -0.02, 0.03, -0.01, 0.0])]


@pytest.mark.parametrize("which", ["real", 0, 1, 2])
def test_ratios_match_empyrical(which, real_returns) -> None:
    r = real_returns if which == "real" else _series()[which]
    kw = {"annualization": 365}
    assert m.sharpe(r) == pytest.approx(ep.sharpe_ratio(r, **kw), rel=1e-9)
    assert m.sortino(r) == pytest.approx(ep.sortino_ratio(r, **kw), rel=1e-9)
    assert m.annual_return(r) == pytest.approx(ep.annual_return(r, **kw), rel=1e-9)
    assert m.annual_volatility(r) == pytest.approx(ep.annual_volatility(r, **kw), rel=1e-9)
    assert m.max_drawdown_of_returns(r) == pytest.approx(ep.max_drawdown(r), rel=1e-9)
    assert m.calmar(r) == pytest.approx(ep.calmar_ratio(r, **kw), rel=1e-9)
    assert m.omega(r) == pytest.approx(ep.omega_ratio(r, **kw), rel=1e-9)
    for level in (0.95, 0.99):
        assert m.value_at_risk(r, level) == pytest.approx(ep.value_at_risk(r, cutoff=1 - level), rel=1e-9)
        assert m.conditional_value_at_risk(r, level) == pytest.approx(
            ep.conditional_value_at_risk(r, cutoff=1 - level), rel=1e-9)


def test_period_returns_use_utc_day_closes() -> None:
    ts = np.array([0, DAY // 2, DAY - 60_000, DAY, DAY + 5, 3 * DAY], dtype="int64")
    eq = np.array([101.0, 99.0, 102.0, 110.0, 100.0, 120.0])
    r = m.period_returns(ts, eq, 100.0)
    np.testing.assert_allclose(r, [0.02, 100 / 102 - 1, 0.2])


def test_drawdown_depth_duration_and_recovery() -> None:
    ts = np.arange(8, dtype="int64") * DAY
    eq = np.array([100, 120, 90, 60, 80, 119, 121, 110], dtype=float)
    dd = m.max_drawdown(ts, eq, 100.0)
    assert dd.depth == pytest.approx(60 / 120 - 1)
    assert (dd.peak_ms, dd.trough_ms, dd.recovery_ms) == (1 * DAY, 3 * DAY, 6 * DAY)
    assert dd.duration_ms == 5 * DAY and dd.recovery_time_ms == 3 * DAY
    never = m.max_drawdown(ts[:5], eq[:5], 100.0)
    assert never.recovery_ms is None and never.recovery_time_ms is None
    assert never.duration_ms == 3 * DAY  # still under water at the end (day 4) since the peak on day 1


def test_initial_wallet_counts_as_a_peak() -> None:
    dd = m.max_drawdown(np.array([0, DAY]), np.array([80.0, 90.0]), 100.0)
    assert dd.depth == pytest.approx(-0.2)


@dataclass
class T:
    open_ms: int
    close_ms: int
    net_pnl: float
    return_on_equity: float
    liquidated: bool = False


def test_trade_statistics_by_hand() -> None:
    trades = [T(0, 60_000, 30.0, 0.03), T(0, 180_000, -10.0, -0.01), T(0, 120_000, 20.0, 0.02),
              T(0, 240_000, -20.0, -0.02)]
    ts = np.arange(2 * 1440, dtype="int64") * 60_000
    eq = np.full(len(ts), 1_020.0)
    out = m.compute_metrics(ts, eq, trades, 1_000.0, 60_000, fees=5.0, funding=-1.0, liquidations=0,
                            exposure_bars=720)
    assert out.trades == 4
    assert out.win_rate == pytest.approx(0.5)
    assert out.profit_factor == pytest.approx(50 / 30)
    assert out.payoff_ratio == pytest.approx(25 / 15)
    assert out.expectancy == pytest.approx(5.0)
    assert out.expectancy_pct == pytest.approx(0.005)
    assert out.avg_holding_minutes == pytest.approx(2.5)
    assert out.trades_per_day == pytest.approx(2.0)
    assert out.exposure == pytest.approx(0.25)
    assert out.total_return == pytest.approx(0.02)
    assert out.annual_return == pytest.approx(1.02 ** (365 / 2) - 1)
    assert out.days == pytest.approx(2.0)


def test_metrics_serialise_without_nan() -> None:
    ts = np.arange(10, dtype="int64") * 60_000
    out = m.compute_metrics(ts, np.full(10, 1_000.0), [], 1_000.0, 60_000, 0.0, 0.0, 0, 0)
    d = out.to_dict()
    assert d["win_rate"] is None and d["sharpe"] is None and d["trades"] == 0
