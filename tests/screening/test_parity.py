"""Parity is the contract: the screening engine's trade list equals the Backtrader path's, trade for trade (entry and
exit bar, side, exit reason; size within one step, prices within one tick), on the shipped data and on
../shared/data pairs (slow, skipped where ../shared is absent)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from trader.backtest.runner import BacktestRequest, resolve_strategy, run_backtest
from trader.config.pairs import normalize_pair
from trader.model.instruments import MissingRules
from trader.model.rules import resolve_rules
from trader.optimize.spaces import select_dimensions, to_strategy_params
from trader.screening.engine import prepare, run_screening, twin_for
from trader.screening.parity import compare_trades

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "futures"


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
    assert sc.risk_counts == bt.risk_counts
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


def _space_params(strategy: str, rng: random.Random) -> dict:
    """A random point of every space the strategy declares (what hyperopt would try)."""
    cls = resolve_strategy(strategy)
    dims = select_dimensions(cls, ["all"])
    return to_strategy_params(cls, {d.name: rng.choice(d.values()) for d in dims})


@pytest.mark.parametrize("strategy", ["oscillation", "breakout", "trend"])
@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL"])
def test_managed_strategies(strategy: str, pair: str) -> None:
    """The three setups on their usual 5m feed (default and random points of their declared spaces) and, for one
    pair, on a 1m feed."""
    rng = random.Random(f"{strategy}{pair}")
    total = _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="5m"))
    for _ in range(2):
        total += _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="5m",
                                        strategy_params=_space_params(strategy, rng), leverage=rng.choice((10, 25))))
    if pair == "BTC":
        total += _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="1m",
                                        strategy_params={"feed_timeframe": "1m"}))
    assert total > 10


@pytest.mark.parametrize("strategy,timeframe", [("rsi_bollinger", "5m"), ("rsi_bollinger", "15m"),
                                                ("oscillation", "5m"), ("breakout", "5m"), ("trend", "5m")])
def test_several_pairs_share_the_account(strategy: str, timeframe: str) -> None:
    """BTC, ETH and SOL in one account: one wallet, cross-margin liquidation prices, the risk book's open
    positions, total budget, loss streak and correlation blocks across pairs — the same trades in the same order."""
    request = BacktestRequest(strategy=strategy, pairs=("BTC", "ETH", "SOL"), timeframe=timeframe)
    assert _check(request) > 20
    rng = random.Random(strategy + timeframe)
    _check(BacktestRequest(strategy=strategy, pairs=("SOL", "BTC"), timeframe=timeframe, leverage=50,
                           strategy_params=_space_params(strategy, rng)))


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


def test_cross_margin_liquidations_across_pairs() -> None:
    """Oversized positions on three pairs: the liquidation prices depend on the other positions (cross margin)
    and a liquidation cancels every pair's orders; both engines liquidate the same trades."""
    params = {"stop_leverage_factor": 10.0, "min_stop_distance": 0.2, "atr_multiplier": 100.0,
              "time_stop_bars": 2000, "risk_per_trade": 3.0, "max_total_risk": 9.0, "max_coin_risk": 5.0,
              "tp_moves": (0.2, 0.3, 0.4), "correlation_max": 1.0, "max_drawdown": 1.0}
    request = BacktestRequest(pairs=("BTC", "ETH", "SOL"), timeframe="15m", leverage=50, strategy_params=params)
    bt = run_backtest(request)
    assert sum(t.liquidated for t in bt.trades) >= 2
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
    assert twin_for(BacktestRequest(pairs=("BTC", "ETH")))[0] is not None
    twin, why = twin_for(BacktestRequest(strategy="master"))
    assert twin is None and "no screening twin" in why
    twin, why = twin_for(BacktestRequest(strategy="trend", strategy_params={"ml_provider": object()}))
    assert twin is None and "ML model" in why
    twin, why = twin_for(BacktestRequest(strategy="rsi_bollinger", strategy_params={"tp_moves": (0.01,) * 4,
                                                                                     "tp_shares": (0.25,) * 4}))
    assert twin is None and "take-profit tiers" in why
    with pytest.raises(ValueError, match="no screening twin"):
        run_screening(BacktestRequest(strategy="master"))


def _skip_without_rules(pair: str) -> None:
    """Neither engine can run a pair whose exchange rules (lot step, tick, brackets) are not stored."""
    try:
        resolve_rules([normalize_pair(pair)], SHARED)
    except MissingRules as exc:
        pytest.skip(str(exc).split(" — ")[0])


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data")
@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL", "BNB", "DOGE", "XRP"])
def test_reference_shared_data_1m(pair: str) -> None:
    """Real pairs from ../shared/data: every stored 1m bar (gaps split the runs, mark and funding as stored), then
    15m and 1h where stored, default and random parameters."""
    rng = random.Random(pair)
    _skip_without_rules(pair)
    _check(BacktestRequest(pairs=(pair,), timeframe="1m", data_dir=SHARED))
    _check(BacktestRequest(pairs=(pair,), timeframe="1m", data_dir=SHARED, strategy_params=_random_params(rng)))
    for tf in ("15m", "1h"):
        if (SHARED / f"{pair}_USDT_USDT-{tf}-futures.parquet").exists():
            _check(BacktestRequest(pairs=(pair,), timeframe=tf, data_dir=SHARED))
            _check(BacktestRequest(pairs=(pair,), timeframe=tf, data_dir=SHARED, strategy_params=_random_params(rng)))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data")
@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL", "ADA", "1000PEPE"])
def test_reference_shared_data_hourly(pair: str) -> None:
    """The hourly history (years), several leverage levels."""
    rng = random.Random(pair + "1h")
    _skip_without_rules(pair)
    for lev in (10, 25, 50):
        _check(BacktestRequest(pairs=(pair,), timeframe="1h", data_dir=SHARED, leverage=lev,
                               strategy_params=_random_params(rng)))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data")
@pytest.mark.parametrize("strategy", ["oscillation", "breakout", "trend"])
@pytest.mark.parametrize("pair", ["BTC", "ETH", "SOL"])
def test_managed_shared_data(strategy: str, pair: str) -> None:
    """The three setups on ../shared/data's 5m history (default and a random point of their spaces) and on every
    stored 1m bar."""
    rng = random.Random(f"{strategy}{pair}shared")
    _skip_without_rules(pair)
    _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="5m", data_dir=SHARED))
    _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="5m", data_dir=SHARED,
                           strategy_params=_space_params(strategy, rng)))
    _check(BacktestRequest(strategy=strategy, pairs=(pair,), timeframe="1m", data_dir=SHARED,
                           strategy_params={"feed_timeframe": "1m"}))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data")
@pytest.mark.parametrize("strategy,timeframe", [("rsi_bollinger", "1m"), ("rsi_bollinger", "1h"),
                                                ("oscillation", "5m"), ("breakout", "5m"), ("trend", "5m")])
def test_several_pairs_shared_data(strategy: str, timeframe: str) -> None:
    """BTC, ETH and SOL in one account over ../shared/data's history (the bars all three have)."""
    _check(BacktestRequest(strategy=strategy, pairs=("BTC", "ETH", "SOL"), timeframe=timeframe, data_dir=SHARED))
