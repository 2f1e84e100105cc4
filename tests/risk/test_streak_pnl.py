"""The loss streak hears each position's whole price P&L. A stop replaced by a new one (break-even after the first
target, trailing) is cancelled and told at the next bar's start, perhaps after the new stop filled; the strategy
took that notification for the position's end and handed the risk book the P&L without the final fill, so a
break-even exit could count as a loss (or the reverse)."""

from __future__ import annotations

import pytest

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.risk.book import RiskBook
from trader.strategy.reference import RsiBollingerStrategy
from trader.strategy.strategies import BreakoutStrategy

PARAMS = {"breakeven": True, "trail_atr_multiplier": 1.5, "tp_moves": (0.005, 0.015, 0.04)}


@pytest.mark.parametrize(("strategy", "params"), [(RsiBollingerStrategy, PARAMS), (BreakoutStrategy, {})])
def test_risk_book_hears_every_fill_of_a_position(monkeypatch, strategy, params) -> None:
    heard: list[tuple[str, float]] = []
    original = RiskBook.closed

    def closed(self, pair: str, pnl: float, wallet: float) -> None:
        heard.append((pair, pnl))
        original(self, pair, pnl, wallet)

    monkeypatch.setattr(RiskBook, "closed", closed)
    result = run_backtest(BacktestRequest(strategy=strategy, pairs=("BTC/USDT:USDT", "ETH/USDT:USDT"),
                                          timeframe="15m", strategy_params=params, use_funding=False))
    # A position the run's end closes is closed by the runner, not heard by the strategy.
    trades = sorted((t for t in result.trades if t.exit_reason != "end_of_run"), key=lambda t: (t.close_ms, t.pair))
    assert len(trades) > 20
    per_pair: dict[str, list[float]] = {}
    for pair, pnl in heard:
        per_pair.setdefault(pair, []).append(pnl)
    for pair in {t.pair for t in trades}:
        mine = [t.realized_pnl for t in trades if t.pair == pair]
        got = per_pair.get(pair, [])
        assert len(got) == len(mine), pair
        assert got == pytest.approx(mine, rel=1e-9, abs=1e-6), pair
