"""Each strategy and the master in run_backtest on the shipped data; grades; hysteresis; bad input."""

from __future__ import annotations

import types

import numpy as np
import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.strategy.fusion import Prediction, set_ml_provider
from trader.strategy.managed import Candidate, ManagedStrategy
from trader.strategy.master import MasterStrategy, hysteresis
from trader.strategy.multitf import TimeframeError
from trader.strategy.preflight import PreflightError, check_backtest, live_requirements, run_checked
from trader.strategy.reference import STRATEGIES
from trader.strategy.setups import SETUPS

from .conftest import candles_of

MONTH = parse_timerange("20250504-20250603")


@pytest.mark.parametrize("name", ["oscillation", "breakout", "trend", "master"])
def test_runs_on_the_shipped_data(name) -> None:
    cls = STRATEGIES[name]
    res = run_backtest(BacktestRequest(strategy=name, pairs=("BTC", "ETH", "SOL"), timeframe="5m",
                                       start_ms=MONTH[0], end_ms=MONTH[1]))
    assert res.trades, f"{name} should trade on a month of three pairs"
    net = sum(t.net_pnl for t in res.trades)
    assert res.final_wallet - res.initial_wallet == pytest.approx(net, abs=1e-6)
    first_decision = MONTH[0] + cls.warmup_for(cls.param_values(), "5m") * 300_000
    assert min(t.open_ms for t in res.trades) >= first_decision, "an entry before the warm-up ended"
    assert {t.exit_reason for t in res.trades} <= {"stop", "stop_breakeven", "stop_trail", "tp1", "tp2", "tp3",
                                                   "time_stop", "exit_signal", "end_of_run", "liquidation"}


def test_grades() -> None:
    stub = types.SimpleNamespace(p=types.SimpleNamespace(ml_confirm=0.6, ml_provider=None))
    setup = SETUPS["trend"]
    probs: list[float | None] = [None]
    stub.ml_confirms = lambda d, side: probs[0]
    grade = lambda agree: ManagedStrategy.grade(stub, None, Candidate(1, setup, agree))  # noqa: E731
    assert [grade(a) for a in (1, 2, 3, 4)] == [1, 2, 2, 2]  # no model: grade 3 is never given
    probs[0] = 0.55
    assert grade(3) == 2  # a model that does not confirm strongly enough
    probs[0] = 0.7
    assert [grade(a) for a in (1, 2, 3)] == [1, 2, 3]


def test_grade_sets_horizon_targets_and_size() -> None:
    p = MasterStrategy.param_values()
    stub = types.SimpleNamespace(p=types.SimpleNamespace(**p))
    plan = lambda s, g: ManagedStrategy.plan(stub, Candidate(1, SETUPS[s], 1), g)  # noqa: E731
    assert plan("oscillation", 1).tp_moves == (0.005,) and plan("oscillation", 3).tp_moves == (0.01,)
    assert plan("oscillation", 1).hold_ms == 60 * 60_000  # 1–15 min signals: 60 min
    assert plan("trend", 1).hold_ms == 8 * 3_600_000 and plan("trend", 3).hold_ms == 16 * 3_600_000
    assert plan("trend", 2).tp_moves == (0.008, 0.02, 0.05)
    assert plan("breakout", 2).tp_moves == ()  # the ATR trailing stop is the exit
    assert [plan("trend", g).size for g in (1, 2, 3)] == [0.5, 0.75, 1.0]


def test_ml_provider_reaches_the_strategy_and_unsets() -> None:
    class Always:
        def predict(self, pair, at_ms, features):
            assert "close" in features and at_ms > 0
            return Prediction(1, 0.9, "stub")

    set_ml_provider(Always())
    try:
        res = run_backtest(BacktestRequest(strategy="trend", pairs=("BTC", "ETH", "SOL"), timeframe="5m",
                                           start_ms=MONTH[0], end_ms=MONTH[1]))
        assert res.trades
    finally:
        set_ml_provider(None)


def test_hysteresis_does_not_flap() -> None:
    r = np.array(["unknown"] + ["ranging"] * 4 + ["trending", "ranging"] * 3 + ["trending"] * 3 + ["breakout"]
                 + ["volatile"] * 3, dtype=object)
    route = hysteresis(r, confirm=2, memory=24, volatile_route="none")
    names = {0: "none", 1: "osc", 2: "brk", 3: "trd"}
    got = [names[int(x)] for x in route]
    assert got[:2] == ["none", "none"]  # unknown, then one ranging bar is not yet confirmed
    assert got[2:11] == ["osc"] * 9  # one-bar trending blips do not switch
    assert got[11:14] == ["osc", "trd", "trd"]  # two trending bars do
    assert got[14] == "brk"  # a breakout takes over at once
    assert got[15:] == ["brk", "none", "none"]  # volatile confirmed: stand aside
    flapping = hysteresis(np.array(["ranging", "ranging"] + ["trending", "ranging"] * 20, dtype=object), 2, 6, "none")
    assert flapping[1] == 1 and flapping[-1] == 0  # nothing confirmed for `memory` bars: stand aside


def test_half_warm_never_trades(sol_5m) -> None:
    for cls in (MasterStrategy, STRATEGIES["oscillation"]):
        need = cls.warmup_for(cls.param_values(), "5m")
        cols = cls.compute_indicators(candles_of(sol_5m[: need - 1]), cls.param_values())
        assert not cols["ready"].any()
        assert all(not np.any(cols[k]) for k in cols if k.endswith("signal"))
        full = cls.compute_indicators(candles_of(sol_5m), cls.param_values())
        assert not full["ready"][:need].any() and full["ready"][need + 300:].all()


def test_bad_input_is_named() -> None:
    s, e = MONTH
    assert check_backtest(BacktestRequest(strategy="moon", pairs=("BTC",))) == [
        "unknown strategy 'moon'; known: breakout, master, oscillation, rsi_bollinger, trend"]
    (msg,) = check_backtest(BacktestRequest(strategy="master", pairs=("BTC",), timeframe="1h", start_ms=s, end_ms=e))
    assert "cannot build oscillation signal 5m" in msg and "from 1h candles" in msg
    (msg,) = check_backtest(BacktestRequest(strategy="trend", pairs=("BTC", "DOGE"), timeframe="5m"))
    assert msg.startswith("DOGE/USDT:USDT: no 5m futures candles, and no 1m candles")
    (msg,) = check_backtest(BacktestRequest(strategy="master", pairs=("BTC",), timeframe="5m", start_ms=s,
                                            end_ms=s + 5 * 86_400_000))
    assert msg.startswith("too little history") and "needs" in msg and "5m/15m/30m/1h/4h" in msg
    with pytest.raises(PreflightError, match="too little history"):
        run_checked(BacktestRequest(strategy="oscillation", pairs=("BTC",), timeframe="5m", start_ms=s,
                                    end_ms=s + 86_400_000))
    assert check_backtest(BacktestRequest(strategy="master", pairs=("BTC",), timeframe="5m", start_ms=s, end_ms=e)) == []
    with pytest.raises(TimeframeError, match="cannot build trend signal 1h, trend grading #1 15m, trend grading #2 1h from 4h candles"):
        STRATEGIES["trend"].compute_indicators(
            candles_of(__import__("pandas").DataFrame({"timestamp": np.arange(10) * 14_400_000, "open": 1.0,
                                                       "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})),
            STRATEGIES["trend"].param_values())
    req = live_requirements("master", {}, "5m")
    assert req["window"] > 1500 and req["history_bars"] == req["window"]
