from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from trader.analysis.bars import Bars, resample_bars, to_bars
from trader.data.store import bundled_data_dir, load_candles

PAIRS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


@lru_cache(maxsize=8)
def real_bars(pair: str = "BTC/USDT:USDT", timeframe: str = "1m") -> Bars:
    """The shipped real data (May 2025), resampled with the store's boundaries."""
    base = to_bars(load_candles(bundled_data_dir(), pair, "1m"), "1m")
    return resample_bars(base, timeframe)


@pytest.fixture
def btc_15m() -> Bars:
    return real_bars("BTC/USDT:USDT", "15m")


@pytest.fixture
def btc_1h() -> Bars:
    return real_bars("BTC/USDT:USDT", "1h")


def synthetic_bars(points: list[tuple[float, float]], n: int = 160, noise: float = 0.0, seed: int = 0,
                   bar_range: float = 0.6, timeframe: str = "1h") -> Bars:
    """Closes drawn through key points (x 0..1, price), opens at the previous close, a fixed range around each
    body: a clean chart of a given shape."""
    xs, ys = zip(*points, strict=True)
    c = np.interp(np.linspace(0, 1, n), xs, ys) + np.random.default_rng(seed).normal(0, noise, n)
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) + bar_range / 2
    lo = np.minimum(o, c) - bar_range / 2
    ts = 1_746_403_200_000 + 3_600_000 * np.arange(n)
    v = 100 + np.random.default_rng(seed + 1).gamma(2.0, 50.0, n)
    return Bars(timeframe, ts.astype("int64"), o, h, lo, c.astype("float64"), v)
