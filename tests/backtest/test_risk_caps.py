"""Account-level caps of the reference strategy: positions open at once and the summed risk at the stops."""

from __future__ import annotations

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.data.timerange import parse_timerange

WINDOW = parse_timerange("20250505-20250512")
PAIRS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


def _max_concurrent(trades) -> int:
    events = sorted([(t.open_ms, 1) for t in trades] + [(t.close_ms, -1) for t in trades], key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _run(**params):
    return run_backtest(BacktestRequest(strategy="rsi_bollinger", pairs=PAIRS, timeframe="5m",
                                        start_ms=WINDOW.start_ms, end_ms=WINDOW.end_ms, leverage=25,
                                        strategy_params=params))


def test_max_open_trades_limits_concurrent_positions() -> None:
    free = _run(max_open_trades=3)
    capped = _run(max_open_trades=1)
    assert _max_concurrent(free.trades) > 1  # the window does have overlapping signals
    assert _max_concurrent(capped.trades) == 1
    assert 0 < len(capped.trades) < len(free.trades)


def test_total_risk_budget_shrinks_or_skips_entries() -> None:
    # 6 % per trade under a 10 % budget: a second concurrent position gets at most 4 %, a third none.
    result = _run(risk_per_trade=0.06, max_total_risk=0.10)
    assert _max_concurrent(result.trades) <= 2


def test_stop_trails_after_the_first_target_and_only_tightens() -> None:
    trailing = _run()
    fixed = _run(trail_atr_multiplier=0)
    assert any(t.exit_reason == "stop_trail" for t in trailing.trades)
    assert not any(t.exit_reason == "stop_trail" for t in fixed.trades)
    # A trailed stop sits beyond break-even: a long stopped by it exits above its entry, a short below.
    for t in trailing.trades:
        if t.exit_reason == "stop_trail":
            assert (t.exit_price - t.entry_price) * (1 if t.side == "long" else -1) > 0
