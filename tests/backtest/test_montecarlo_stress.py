"""Monte Carlo properties and the flash-crash stress mode."""

from __future__ import annotations

import numpy as np
import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange
from trader.backtest.stress import FlashCrash, stress_test
from trader.data.store import bundled_data_dir, load_candles
from trader.performance.montecarlo import monte_carlo
from trader.strategy.base import FuturesStrategy

RNG = np.random.default_rng(11)
TRADES = RNG.normal(0.002, 0.02, 200)


def test_shuffle_keeps_the_final_return_and_spreads_drawdowns() -> None:
    mc = monte_carlo(TRADES, runs=2_000, method="shuffle", seed=1)
    expected = float(np.prod(1 + TRADES) - 1)
    assert mc.original_final_return == pytest.approx(expected)
    assert all(v == pytest.approx(expected) for v in mc.final_return.values())
    dd = mc.max_drawdown
    assert dd["p1"] <= dd["p5"] <= dd["p50"] <= dd["p95"] <= dd["p99"] <= 0
    assert dd["p1"] < dd["p99"]  # orderings really differ
    assert dd["p1"] <= mc.original_max_drawdown <= dd["p99"]


def test_bootstrap_percentiles_var_and_cvar_are_ordered() -> None:
    mc = monte_carlo(TRADES, runs=5_000, method="bootstrap", seed=2)
    fr = mc.final_return
    assert fr["p1"] < fr["p5"] < fr["p25"] < fr["p50"] < fr["p75"] < fr["p95"] < fr["p99"]
    assert mc.var_95 == pytest.approx(fr["p5"])
    assert mc.cvar_99 <= mc.var_99 <= mc.var_95 and mc.cvar_99 <= mc.cvar_95 <= mc.var_95
    # The bootstrap median sits near the compounded mean of the sample.
    assert fr["p50"] == pytest.approx(np.exp(200 * np.mean(np.log1p(TRADES))) - 1, abs=0.25)


def test_default_is_ten_thousand_runs_and_seed_reproducible() -> None:
    a = monte_carlo(TRADES[:50], seed=5)
    b = monte_carlo(TRADES[:50], seed=5)
    assert a.runs == 10_000 and a == b


def test_probability_of_ruin() -> None:
    assert monte_carlo([0.01] * 30, runs=200, seed=0).probability_of_ruin == 0.0
    assert monte_carlo([-0.2] * 5, runs=200, seed=0).probability_of_ruin == 1.0  # 0.8^5 = 0.33 < 0.5
    mixed = monte_carlo([0.3, -0.3] * 10, runs=4_000, method="bootstrap", seed=3)
    assert 0.0 < mixed.probability_of_ruin < 1.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        monte_carlo([])
    with pytest.raises(ValueError):
        monte_carlo([0.1], method="jackknife")  # type: ignore[arg-type]


class HoldLong(FuturesStrategy):
    """Opens one unprotected 20x-notional long and holds it: the account the crash is meant to break."""

    params = (("notional_x", 20.0),)

    def next(self) -> None:
        if len(self.data) == 2:
            spec = self.account.instrument(self.data)
            qty = spec.round_qty_down(self.account.wallet_balance() * self.p.notional_x / self.data.close[0])
            self.buy(size=qty)


def test_flash_crash_replayed_through_the_engine_liquidates_a_leveraged_long() -> None:
    s, _ = parse_timerange("20250512-")
    df = load_candles(bundled_data_dir(), "BTC/USDT:USDT", "1m", start_ms=s, end_ms=s + 4 * 3_600_000)
    crash = FlashCrash(at_ms=s + 2 * 3_600_000, depth=0.3)
    req = BacktestRequest(strategy=HoldLong, pairs=("BTC",), candles={"BTC/USDT:USDT": df}, initial_wallet=1_000.0,
                          use_funding=False)
    out = stress_test(req, crash)
    assert out.baseline.metrics.liquidations == 0
    assert out.stressed.metrics.liquidations == 1
    (t,) = out.stressed.trades
    assert t.liquidated and t.close_ms >= crash.at_ms
    assert out.stressed.final_wallet < out.baseline.final_wallet
    # The crashed candles themselves: bottom at 70 % of the original, partial recovery afterwards.
    f = crash.factors(df["timestamp"].to_numpy())
    assert f.min() == pytest.approx(0.7) and f[-1] == pytest.approx(0.88)
    assert f[: 120].max() == 1.0


def test_stress_runs_the_reference_strategy_too() -> None:
    s, _ = parse_timerange("20250512-")
    out = stress_test(BacktestRequest(pairs=("ETH",), start_ms=s, end_ms=s + 86_400_000), FlashCrash(depth=0.2))
    assert out.stressed.bars == out.baseline.bars
    assert out.stressed.final_wallet != out.baseline.final_wallet or out.stressed.trades != out.baseline.trades
