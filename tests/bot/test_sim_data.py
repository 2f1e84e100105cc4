"""`bsmart sim --data` takes a data folder with a futures/ subfolder (../shared/data) or the futures folder itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.commands.sim import SIM_API_KEY, SIM_API_SECRET, data_dir
from trader.data.store import bundled_data_dir
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET


def test_the_data_folder_or_its_futures_subfolder(tmp_path: Path) -> None:
    futures = tmp_path / "data" / "futures"
    futures.mkdir(parents=True)
    for source in sorted(bundled_data_dir().glob("BTC_USDT_USDT-1m-futures.*")):
        shutil.copy(source, futures / source.name)
    assert data_dir(tmp_path / "data") == futures
    assert data_dir(futures) == futures
    assert data_dir(bundled_data_dir().parent.parent) == bundled_data_dir()  # user_data's binance/futures layout
    with pytest.raises(ValueError, match="no <PAIR>-<timeframe>-futures candle files"):
        data_dir(tmp_path)
    with pytest.raises(ValueError, match="no such directory"):
        data_dir(tmp_path / "nowhere")


def test_the_help_names_the_key_pair_the_simulator_accepts() -> None:
    assert (SIM_API_KEY, SIM_API_SECRET) == (DEFAULT_API_KEY, DEFAULT_API_SECRET)
