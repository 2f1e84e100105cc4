"""No lookahead, for every strategy of the layer: columns and decisions before T do not change when the bars after T
are removed."""

from __future__ import annotations

import numpy as np
import pytest

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.strategy.master import MasterStrategy
from trader.strategy.preflight import live_requirements
from trader.strategy.strategies import BreakoutStrategy, OscillationStrategy, TrendStrategy

from .conftest import assert_prefix_equal, candles_of

ALL = [OscillationStrategy, BreakoutStrategy, TrendStrategy, MasterStrategy]
DISCRETE = ("ready", "route", "regime", "osc_signal", "brk_signal", "trd_signal", "osc_agree", "brk_agree", "trd_agree",
            "osc_exit_long", "trd_exit_short", "signal", "exits")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_columns_have_no_lookahead(cls, sol_5m) -> None:
    params = cls.param_values()
    full = cls.compute_indicators(candles_of(sol_5m), params)
    assert set(full) == set(cls.indicator_lines)
    signals = [k for k in full if k.endswith("signal")]
    assert sum(np.count_nonzero(full[k]) for k in signals) > 5, "the test needs signals to compare"
    for t in (100, 2_300, 4_567, 6_001, 8_000):
        cut = cls.compute_indicators(candles_of(sol_5m[: t + 1]), params)
        assert_prefix_equal(full, cut, t, cls.__name__)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_a_live_window_decides_like_the_whole_series(cls, sol_5m) -> None:
    """The live feed recomputes on its rolling window: with the window ``live_requirements`` asks for, the discrete
    columns (what decides) at the window's last bar equal the whole-series values."""
    params = cls.param_values()
    full = cls.compute_indicators(candles_of(sol_5m), params)
    w = live_requirements(cls, {}, "5m")["window"]
    checked = 0
    for t in range(w + 5, len(sol_5m), 97):
        win = cls.compute_indicators(candles_of(sol_5m[t + 1 - w: t + 1]), params)
        for k in DISCRETE:
            if k in win:
                assert win[k][-1] == full[k][t], f"{cls.__name__}: {k} at bar {t} differs on a {w}-bar window"
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("name", ["oscillation", "breakout", "trend", "master"])
def test_decisions_have_no_lookahead(name, btc_1m) -> None:
    df = btc_1m[btc_1m["timestamp"] >= btc_1m["timestamp"].iloc[0]]
    full = run_backtest(BacktestRequest(strategy=name, pairs=("BTC",), timeframe="1m",
                                        candles={"BTC/USDT:USDT": df}))
    cut_at = int(df["timestamp"].iloc[int(len(df) * 0.7)])
    short = run_backtest(BacktestRequest(strategy=name, pairs=("BTC",), timeframe="1m",
                                         candles={"BTC/USDT:USDT": df[df["timestamp"] < cut_at]}))

    def done_before(res):
        return [(t.open_ms, t.close_ms, t.side, t.qty, t.entry_price, t.exit_price, t.exit_reason)
                for t in res.trades if t.close_ms < cut_at - 60_000]

    assert len(done_before(full)) >= 3, f"{name}: too few trades to compare"
    assert done_before(full) == done_before(short)
    n = len(short.equity) - 2
    np.testing.assert_allclose(short.equity[:n], full.equity[:n])
