"""Liquidity tiers in a backtest, from candle volume (the backtest has no order book): a quiet last hour against
the day's volume shrinks (mild) or refuses (moderate) an entry; an ordinary hour does nothing; the result says
how the tiers were read."""

from __future__ import annotations

import numpy as np
import pytest
from risk_helpers import BTC, LONG, QUIET, Scripted, counts, frame

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.risk.liquidity import CANDLE_ASSUMPTION, CandleLiquidityGate, LiquidityRules, Tier

DAY_BARS = 288  # 5m bars in 24 h
SIGNAL = DAY_BARS + 60


def _frame(last_hour_volume: float | None):
    df = frame(np.full(SIGNAL + 40, 100.0), {SIGNAL: LONG})
    if last_hour_volume is not None:
        df.loc[SIGNAL - 11:SIGNAL - 1, "volume"] = last_hour_volume  # the hour before the signal bar
    return df


RULES = LiquidityRules()  # the config's defaults


def _run(df, liquidity: LiquidityRules | None = RULES):
    return run_backtest(BacktestRequest(strategy=Scripted, pairs=(BTC,), timeframe="5m", leverage=25,
                                        candles={BTC: df}, strategy_params=QUIET, use_mark=False, use_funding=False,
                                        liquidity=liquidity))


def test_an_ordinary_hour_does_not_act() -> None:
    result = _run(_frame(None))
    assert counts(result, "liquidity") == {} and len(result.trades) == 1
    assert CANDLE_ASSUMPTION in result.assumptions


def test_a_quiet_hour_shrinks_then_refuses_entries() -> None:
    free = _run(_frame(None))
    mild = _run(_frame(250.0))  # health ≈ 0.55: mild, half size
    assert counts(mild, "liquidity") == {"shrunk": 1}
    assert mild.trades[0].qty == pytest.approx(0.5 * free.trades[0].qty, rel=0.02)
    moderate = _run(_frame(100.0))  # health ≈ 0.25: moderate, reduce-only
    assert counts(moderate, "liquidity") == {"blocked": 1} and not moderate.trades
    # The same candles without the rule (a request that does not ask for it): the entry goes, and no assumption.
    off = _run(_frame(100.0), liquidity=None)
    assert len(off.trades) == 1 and CANDLE_ASSUMPTION not in off.assumptions


def test_the_candle_reading_and_its_first_day() -> None:
    df = _frame(100.0)
    gate = CandleLiquidityGate({BTC: df}, LiquidityRules(), 300_000)
    t = int(df["timestamp"].iloc[SIGNAL]) + 300_000  # the signal bar's close
    reading = gate.reading(BTC, t)
    assert reading is not None and reading.tier is Tier.MODERATE and reading.source == "candles"
    assert reading.spread is None and 0.2 < reading.health < 0.5
    assert gate.entry(BTC, t).factor == 0 and gate.entry(BTC, t).rule == "liquidity"
    assert gate.reading(BTC, int(df["timestamp"].iloc[100])) is None  # less than a day of bars: no judgement
    assert gate.entry(BTC, int(df["timestamp"].iloc[100])).factor == 1.0
