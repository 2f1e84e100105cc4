"""Scores from metrics, by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.optimize.losses import CAP, PENALTY, make_loss
from trader.optimize.results import margin_return_to_price_move, price_move_to_margin_return
from trader.performance import metrics as pm
from trader.performance.metrics import Metrics

BASE = Metrics(
    total_return=0.12, annual_return=3.5, max_drawdown=-0.10, max_drawdown_duration_days=2.0,
    max_drawdown_recovery_days=1.0, sharpe=1.7, sortino=2.4, calmar=35.0, omega=1.3, annual_volatility=0.5,
    var_95=-0.02, cvar_95=-0.03, var_99=-0.04, cvar_99=-0.05, trades=12, win_rate=0.5, profit_factor=1.4,
    payoff_ratio=1.1, expectancy=10.0, expectancy_pct=0.001, exposure=0.3, trades_per_day=1.0,
    avg_holding_minutes=60.0, fees_paid=5.0, funding_paid=1.0, liquidations=0, days=12.0)


def test_ratio_losses_take_the_metric() -> None:
    assert make_loss("sharpe").score(BASE) == 1.7
    assert make_loss("sortino").score(BASE) == 2.4
    assert make_loss("calmar").score(BASE) == 35.0


def test_profit_drawdown_by_hand() -> None:
    # 12 % return, 10 % drawdown: penalty 1 → 0.12 − 0.10; penalty 2 → 0.12 − 0.20.
    assert make_loss("profit_drawdown").score(BASE) == pytest.approx(0.02)
    assert make_loss("profit_drawdown", drawdown_penalty=2.0).score(BASE) == pytest.approx(-0.08)
    assert make_loss("profit_drawdown", drawdown_penalty=0.0).score(BASE) == pytest.approx(0.12)


def test_undefined_infinite_and_too_few_trades() -> None:
    assert make_loss("sharpe").score(replace(BASE, sharpe=math.nan)) == PENALTY
    assert make_loss("sortino").score(replace(BASE, sortino=math.inf)) == CAP
    assert make_loss("calmar").score(replace(BASE, calmar=-1e9)) == -CAP
    assert make_loss("sharpe", min_trades=13).score(BASE) == PENALTY
    assert make_loss("sharpe", min_trades=12).score(BASE) == 1.7
    assert make_loss("sharpe").score(replace(BASE, trades=0)) == PENALTY


def test_unknown_loss() -> None:
    with pytest.raises(ValueError, match="unknown loss 'omega'"):
        make_loss("omega")


def test_sharpe_loss_on_a_real_backtest_equals_the_daily_return_sharpe() -> None:
    s, e = parse_timerange("20250510-20250520")
    res = run_backtest(BacktestRequest(pairs=("ETH",), timeframe="15m", start_ms=s, end_ms=e))
    r = pm.period_returns(res.equity_ms, res.equity, res.initial_wallet)
    assert res.metrics.trades > 0
    assert make_loss("sharpe").score(res.metrics) == pytest.approx(float(r.mean() / r.std(ddof=1) * math.sqrt(365)))
    final = res.equity[-1] / res.initial_wallet - 1
    peak_dd = min(0.0, float(min(v / max(res.initial_wallet, *res.equity[: i + 1]) - 1
                                 for i, v in enumerate(res.equity))))
    assert make_loss("profit_drawdown").score(res.metrics) == pytest.approx(final - abs(peak_dd))


def test_take_profit_margin_conversion() -> None:
    # The specification's 5/10/20 % profit targets on margin at 25x are 0.2/0.4/0.8 % price moves.
    assert [margin_return_to_price_move(t, 25) for t in (0.05, 0.10, 0.20)] == pytest.approx([0.002, 0.004, 0.008])
    assert price_move_to_margin_return(0.008, 25) == pytest.approx(0.20)
