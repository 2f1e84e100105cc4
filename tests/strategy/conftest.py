"""Shared data for the strategy-layer tests: the shipped sample (BTC/ETH/SOL 1m, 2025-05-04 → 2025-06-03)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.data.store import bundled_data_dir, load_candles, resample
from trader.strategy.base import Candles


def candles_of(df: pd.DataFrame) -> Candles:
    return Candles(*(df[k].to_numpy(dtype="int64" if k == "timestamp" else "float64")
                     for k in ("timestamp", "open", "high", "low", "close", "volume")))


@pytest.fixture(scope="session")
def sol_5m() -> pd.DataFrame:
    return resample(load_candles(bundled_data_dir(), "SOL/USDT:USDT", "1m"), "1m", "5m").reset_index(drop=True)


@pytest.fixture(scope="session")
def btc_1m() -> pd.DataFrame:
    return load_candles(bundled_data_dir(), "BTC/USDT:USDT", "1m").reset_index(drop=True)


def assert_prefix_equal(full: dict[str, np.ndarray], cut: dict[str, np.ndarray], t: int, who: str) -> None:
    for name, values in cut.items():
        np.testing.assert_allclose(values, full[name][: t + 1], rtol=1e-9, atol=1e-9, equal_nan=True,
                                   err_msg=f"{who}: {name} at bar {t} depends on later bars")
