"""The master's incremental columns (the live feed's path) equal ``compute_indicators`` on the whole series, bit for
bit, on the shipped data — with holes, on a 1m and a 5m feed, with non-default parameters, and through
``LiveFeed`` (history preloaded, then live minutes pushed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.live.feed import Bar, live_feed_class
from trader.strategy.master import MasterStrategy

from .conftest import candles_of


def _stream_columns(df: pd.DataFrame, params: dict, feed_ms: int) -> dict[str, np.ndarray]:
    st = MasterStrategy.indicator_stream(params, feed_ms)
    rows = [st.step(int(r[0]), *r[1:]) for r in df[["timestamp", "open", "high", "low", "close", "volume"]]
            .itertuples(index=False, name=None)]
    return {k: np.array([r[k] for r in rows]) for k in MasterStrategy.indicator_lines}


def _assert_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    assert np.count_nonzero(want["signal"]) > 5 and np.count_nonzero(want["ready"]) > len(want["ready"]) // 3


def _with_holes(df: pd.DataFrame) -> pd.DataFrame:
    n = len(df)
    drop = [*range(n // 3, n // 3 + 7), *range(n // 2, n // 2 + 100), (2 * n) // 3]
    return df.drop(index=drop).reset_index(drop=True)


@pytest.mark.parametrize("holes", [False, True])
def test_stream_equals_batch_on_5m(sol_5m, holes) -> None:
    df = _with_holes(sol_5m) if holes else sol_5m
    params = MasterStrategy.param_values()
    _assert_equal(_stream_columns(df, params, 300_000), MasterStrategy.compute_indicators(candles_of(df), params))


def test_stream_equals_batch_on_1m_with_other_parameters(btc_1m) -> None:
    df = _with_holes(btc_1m)
    params = MasterStrategy.param_values({"regime_confirm": 1, "regime_memory": 12, "volatile_route": "breakout",
                                          "osc_timeframe": "15m", "osc_grade_timeframes": "15m,1h",
                                          "brk_lookback": 30, "regime_percentile_window": 100})
    _assert_equal(_stream_columns(df, params, 60_000), MasterStrategy.compute_indicators(candles_of(df), params))


def test_live_feed_uses_the_stream_and_matches_the_backtest_columns(btc_1m) -> None:
    df = btc_1m.iloc[: 20_000]
    params = MasterStrategy.param_values()
    want = MasterStrategy.compute_indicators(candles_of(df), params)
    feed = live_feed_class(MasterStrategy.indicator_lines)(pair="BTC", strategy_cls=MasterStrategy,
                                                           strategy_params=params, tf_ms=60_000, window=100)
    assert feed._stream is not None
    rows = list(df[["timestamp", "open", "high", "low", "close", "volume"]].itertuples(index=False, name=None))
    split = 15_000  # the feed's own window (100 bars) is far shorter: the stream never reads it
    feed.preload_history([Bar(int(r[0]), *r[1:]) for r in rows[:split]])
    for r in rows[split:]:
        feed.push_minute(int(r[0]), *r[1:], wake=False)
    got = []
    while not feed._q.empty():
        got.append(feed._q.get_nowait())
    assert [b.ts_ms for b, _ind, _live in got] == df["timestamp"].tolist()
    assert [live for _b, _ind, live in got] == [False] * split + [True] * (len(df) - split)
    _assert_equal({k: np.array([ind[k] for _b, ind, _l in got]) for k in MasterStrategy.indicator_lines}, want)
