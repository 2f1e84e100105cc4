"""Parity is the contract: the screening engine's trade list equals the Backtrader path's, trade for trade (entry and
exit bar, side, exit reason; size within one step, prices within one tick), on the shipped data and on
../shared/data pairs (slow, skipped where ../shared is absent)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.model.rules import resolve_rules
from trader.screening.engine import prepare, run_screening, twin_for
from trader.screening.parity import compare_trades

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _random_params(rng: random.Random) -> dict:
    return {"rsi_period": rng.choice((7, 14, 21)), "rsi_low": rng.choice((25.0, 30.0, 35.0, 40.0)),
            "rsi_high": rng.choice((60.0, 65.0, 70.0, 75.0)), "bb_period": rng.choice((14, 20, 30)),
            "bb_dev": rng.choice((1.5, 2.0, 2.5)), "time_stop_bars": rng.choice((10, 30, 60, 120)),
            "breakeven": rng.choice((True, False)), "atr_multiplier": rng.choice((1.0, 2.0, 3.0)),
            "min_stop_distance": rng.choice((0.003, 0.005, 0.009)), "trail_atr_multiplier": rng.choice((0.0, 1.5)),
            "tp_moves": rng.choice(((0.005, 0.015, 0.04), (0.008, 0.02, 0.05), (0.01, 0.03, 0.1)))}


def _check(request: BacktestRequest) -> int:
    bt = run_backtest(request)
    sc = run_screening(request)
    specs = resolve_rules(bt.pairs, request.data_dir, request.start_ms, request.end_ms).specs
    problems = compare_trades(bt.trades, sc.trades, specs)
    assert not problems, "\n".join(map(str, problems))
    assert sc.final_wallet == pytest.approx(bt.final_wallet, rel=1e-9, abs=1e-6)
    assert sc.metrics.trades == bt.metrics.trades
    assert sc.metrics.sharpe == pytest.approx(bt.metrics.sharpe, rel=1e-6, nan_ok=True)
    assert sc.metrics.max_drawdown == pytest.approx(bt.metrics.max_drawdown, rel=1e-6, abs=1e-12)
    assert len(sc.equity) == len(bt.equity)
    return len(bt.trades)


def test_reference_default_1m_btc() -> None:
    assert _check(BacktestRequest(timeframe="1m")) > 100


@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL"])
@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h"])
def test_reference_random_parameters(pair: str, timeframe: str) -> None:
    rng = random.Random(f"{pair}{timeframe}")
    total = 0
    for k in range(3):
        params = {} if k == 0 else _random_params(rng)
        lev = 25 if k == 0 else rng.choice((5, 25, 50))
        total += _check(BacktestRequest(pairs=(pair,), timeframe=timeframe, strategy_params=params, leverage=lev))
    assert total > 10


def test_liquidations_match() -> None:
    """A leverage and stop that let price reach the liquidation price before the stop: both engines liquidate on
    the same bars at the same price."""
    params = {"stop_leverage_factor": 10.0, "min_stop_distance": 0.2, "atr_multiplier": 100.0,
              "time_stop_bars": 2000, "risk_per_trade": 3.0, "max_total_risk": 5.0, "max_coin_risk": 5.0,
              "tp_moves": (0.2, 0.3, 0.4)}
    request = BacktestRequest(pairs=("ETH",), timeframe="15m", leverage=50, strategy_params=params)
    bt = run_backtest(request)
    assert any(t.liquidated for t in bt.trades)
    _check(request)


def test_no_funding_no_mark_and_time_window() -> None:
    _check(BacktestRequest(pairs=("ETH",), timeframe="5m", use_mark=False, use_funding=False,
                           start_ms=1_747_000_000_000, end_ms=1_748_000_000_000))


def test_prepared_data_is_reused_and_gives_the_same_result() -> None:
    request = BacktestRequest(timeframe="15m")
    data = prepare(request)
    a = run_screening(request, data)
    b = run_screening(request, data)
    assert [t.close_ms for t in a.trades] == [t.close_ms for t in b.trades] and a.final_wallet == b.final_wallet


def test_fallback_reasons() -> None:
    assert twin_for(BacktestRequest())[0] is not None
    twin, why = twin_for(BacktestRequest(pairs=("BTC", "ETH")))
    assert twin is None and "one pair" in why
    twin, why = twin_for(BacktestRequest(strategy="master"))
    assert twin is None and "no screening twin" in why
    with pytest.raises(ValueError, match="no screening twin"):
        run_screening(BacktestRequest(strategy="master"))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "futures").is_dir(), reason="no ../shared/data")
@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL", "BNB", "DOGE", "XRP"])
def test_reference_shared_data(pair: str) -> None:
    """Real pairs from ../shared/data: 60 days of 1m (with gaps, mark and funding as stored) and the 15m/1h
    history, default and random parameters."""
    rng = random.Random(pair)
    day = 86_400_000
    end = 1_745_000_000_000 // day * day
    _check(BacktestRequest(pairs=(pair,), timeframe="1m", data_dir=SHARED, start_ms=end - 60 * day, end_ms=end))
    for tf in ("15m", "1h"):
        for k in range(2):
            _check(BacktestRequest(pairs=(pair,), timeframe=tf, data_dir=SHARED,
                                   strategy_params={} if k == 0 else _random_params(rng)))
