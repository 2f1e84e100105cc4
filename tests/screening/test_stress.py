"""Flash-crash stress runs through the screening engine give the Backtrader path's trades (gaps through stops,
liquidations in the crash)."""

from __future__ import annotations

import pytest

from trader.backtest.runner import BacktestRequest
from trader.backtest.stress import FlashCrash, stress_test
from trader.model.rules import resolve_rules
from trader.screening.parity import compare_trades


@pytest.mark.parametrize("strategy,timeframe", [("rsi_bollinger", "15m"), ("breakout", "5m")])
def test_stress_screening_equals_backtrader(strategy: str, timeframe: str) -> None:
    request = BacktestRequest(strategy=strategy, pairs=("SOL",), timeframe=timeframe, leverage=50)
    scenario = FlashCrash(depth=0.35, fall_bars=3)
    bt = stress_test(request, scenario)
    sc = stress_test(request, scenario, engine="screening")
    assert (bt.engine, sc.engine) == ("backtrader", "screening")
    specs = resolve_rules(["SOL/USDT:USDT"]).specs
    for a, b in ((bt.baseline, sc.baseline), (bt.stressed, sc.stressed)):
        assert not compare_trades(a.trades, b.trades, specs)
        assert b.final_wallet == pytest.approx(a.final_wallet, rel=1e-9)
    assert bt.stressed.final_wallet != bt.baseline.final_wallet


def test_stress_engine_choice() -> None:
    request = BacktestRequest(strategy="master", pairs=("BTC",), timeframe="5m")
    with pytest.raises(ValueError, match="no screening twin"):
        stress_test(request, engine="screening")
    with pytest.raises(ValueError, match="unknown engine"):
        stress_test(request, engine="numpy")
