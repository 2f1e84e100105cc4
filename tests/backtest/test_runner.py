"""End-to-end runs on the data shipped with the package (BTC/ETH/SOL, May 2025)."""

from __future__ import annotations

import numpy as np
import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.data.store import bundled_data_dir, load_candles
from trader.strategy.base import Candles
from trader.strategy.reference import RsiBollingerStrategy

DAY = 86_400_000


@pytest.fixture(scope="module")
def month():
    s, e = parse_timerange("20250504-20250603")
    seen: list[float] = []
    res = run_backtest(BacktestRequest(pairs=("BTC/USDT:USDT",), start_ms=s, end_ms=e),
                       progress=lambda f, _m: seen.append(f))
    return res, seen


def test_accounting_identity(month) -> None:
    res, _ = month
    assert res.trades, "the reference strategy should trade on a month of 1m bars"
    net = sum(t.net_pnl for t in res.trades)
    assert res.final_wallet - res.initial_wallet == pytest.approx(net, abs=1e-6)
    assert sum(t.fees for t in res.trades) == pytest.approx(res.metrics.fees_paid, abs=1e-6)
    assert sum(t.funding for t in res.trades) == pytest.approx(-res.metrics.funding_paid, abs=1e-9)
    assert res.equity[-1] == pytest.approx(res.final_wallet)
    assert len(res.equity) == res.bars == len(res.equity_ms)
    assert np.all(np.diff(res.equity_ms) > 0)


def test_funding_is_charged_on_real_settlements(month) -> None:
    res, _ = month
    assert res.metrics.funding_paid != 0.0
    assert any(t.funding != 0.0 for t in res.trades)


def test_progress_reaches_one(month) -> None:
    _, seen = month
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


def test_trades_are_well_formed(month) -> None:
    res, _ = month
    for t in res.trades:
        assert t.close_ms >= t.open_ms
        assert t.qty > 0 and t.entry_price > 0 and t.exit_price > 0
        assert round(t.qty / 0.001) * 0.001 == pytest.approx(t.qty)  # BTC step size
        assert t.exit_reason in {"stop", "stop_breakeven", "stop_trail", "tp1", "tp2", "tp3", "time_stop", "liquidation",
                                 "end_of_run"}


def test_multi_pair_cross_account_keeps_the_identity() -> None:
    s, _ = parse_timerange("20250510-")
    res = run_backtest(BacktestRequest(pairs=("BTC", "ETH", "SOL"), start_ms=s, end_ms=s + 3 * DAY))
    assert {t.pair for t in res.trades} >= {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert res.final_wallet - res.initial_wallet == pytest.approx(sum(t.net_pnl for t in res.trades), abs=1e-6)
    sol = [t for t in res.trades if t.pair == "SOL/USDT:USDT"]
    assert all(float(t.qty).is_integer() for t in sol)  # SOL's step is 1


def test_gaps_split_the_run_and_are_reported_never_bridged() -> None:
    s, _ = parse_timerange("20250510-")
    df = load_candles(bundled_data_dir(), "BTC/USDT:USDT", "1m", start_ms=s, end_ms=s + 2 * DAY)
    hole = df["timestamp"].between(s + DAY, s + DAY + 29 * 60_000)
    res = run_backtest(BacktestRequest(pairs=("BTC",), candles={"BTC/USDT:USDT": df[~hole]}, use_funding=False))
    assert len(res.segments) == 2
    (gap,) = res.gaps
    assert (gap.start_ms, gap.end_ms, gap.missing) == (s + DAY, s + DAY + 30 * 60_000, 30)
    assert not np.any((res.equity_ms >= gap.start_ms) & (res.equity_ms < gap.end_ms))
    for t in res.trades:  # every position was closed before the hole
        assert not (t.open_ms < gap.start_ms <= t.close_ms)
    assert any("gaps" in a for a in res.assumptions)


def test_higher_timeframe_is_resampled_from_1m() -> None:
    s, _ = parse_timerange("20250510-")
    res = run_backtest(BacktestRequest(pairs=("ETH",), timeframe="5m", start_ms=s, end_ms=s + 5 * DAY))
    assert res.bars == 5 * 288
    assert np.all(np.diff(res.equity_ms) == 300_000)


def test_indicators_have_no_lookahead() -> None:
    df = load_candles(bundled_data_dir(), "SOL/USDT:USDT", "1m")[:5_000]
    params = RsiBollingerStrategy.param_values()

    def ind(n: int) -> dict[str, np.ndarray]:
        part = df[:n]
        c = Candles(*(part[k].to_numpy(dtype="float64") for k in ("timestamp", "open", "high", "low", "close",
                                                                   "volume")))
        return RsiBollingerStrategy.compute_indicators(c, params)

    full = ind(len(df))
    assert np.count_nonzero(full["signal"]) > 10
    for t in (40, 777, 2_500, 4_321):
        cut = ind(t + 1)
        for name, values in cut.items():
            np.testing.assert_allclose(values, full[name][: t + 1], rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=f"{name} at bar {t} depends on later bars")


def test_engine_decisions_have_no_lookahead() -> None:
    s, _ = parse_timerange("20250510-")
    df = load_candles(bundled_data_dir(), "BTC/USDT:USDT", "1m", start_ms=s, end_ms=s + 2 * DAY)
    full = run_backtest(BacktestRequest(pairs=("BTC",), candles={"BTC/USDT:USDT": df}))
    cut_at = int(df["timestamp"].iloc[1_800])
    short = run_backtest(BacktestRequest(pairs=("BTC",), candles={"BTC/USDT:USDT": df[df["timestamp"] < cut_at]}))

    def done_before(res):
        return [(t.open_ms, t.close_ms, t.side, t.qty, t.entry_price, t.exit_price, t.exit_reason)
                for t in res.trades if t.close_ms < cut_at - 60_000]

    assert len(done_before(full)) > 3
    assert done_before(full) == done_before(short)
    n = len(short.equity) - 2
    np.testing.assert_allclose(short.equity[:n], full.equity[:n])
