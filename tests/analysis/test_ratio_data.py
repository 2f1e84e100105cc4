"""The long/short ratio end to end: the simulator serves stored rows (or an empty list, never invented values),
the client reads them, the downloader stores them beside the candles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.data.download import download_long_short_ratio
from trader.data.ratio import load_long_short_ratio, ratio_path, rows_to_frame, save_long_short_ratio
from trader.data.store import bundled_data_dir
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

PAIR = "BTC/USDT:USDT"
FIVE_MIN = 300_000


def _client(sim: SimulatorServer) -> ExchangeClient:
    return ExchangeClient(ClientOptions(api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"),
                                        api_key=DEFAULT_API_KEY, secret=DEFAULT_API_SECRET,
                                        backoff=BackoffPolicy(attempts=2, base_s=0.01, cap_s=0.02)))


def _data_dir_with_ratio(tmp: Path, start_ms: int, n: int) -> tuple[Path, pd.DataFrame]:
    d = tmp / "data"
    d.mkdir()
    for name in ("BTC_USDT_USDT-1m-futures.parquet", "BTC_USDT_USDT-8h-funding_rate.parquet"):
        shutil.copy(bundled_data_dir() / name, d / name)
    ts = start_ms + FIVE_MIN * np.arange(n)
    la = 0.5 + 0.1 * np.sin(np.arange(n) / 7)
    df = pd.DataFrame({"timestamp": ts, "long_short_ratio": la / (1 - la), "long_account": la,
                       "short_account": 1 - la})
    save_long_short_ratio(df, d, PAIR)
    return d, df


async def test_simulator_without_stored_ratio_answers_an_empty_list():
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=[PAIR])) as sim:
        client = _client(sim)
        try:
            assert await client.fetch_long_short_ratio(PAIR, "5m") == []
        finally:
            await client.close()


async def test_simulator_serves_stored_rows_up_to_its_clock_and_the_downloader_stores_them(tmp_path: Path):
    start = 1_746_500_000_000 // FIVE_MIN * FIVE_MIN
    data_dir, stored = _data_dir_with_ratio(tmp_path, start, 2000)
    clock = start + 600 * FIVE_MIN + 123
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=[PAIR], data_dir=data_dir,
                                         start_ms=clock)) as sim:
        client = _client(sim)
        try:
            rows = await client.fetch_long_short_ratio(PAIR, "5m", limit=500)
            assert len(rows) == 500
            assert max(int(r["timestamp"]) for r in rows) <= clock  # nothing from the replay's future
            assert rows[-1]["symbol"] == "BTCUSDT" and int(rows[-1]["timestamp"]) == start + 600 * FIVE_MIN
            got = rows_to_frame(rows)
            want = stored[stored.timestamp.isin(got.timestamp)]
            np.testing.assert_allclose(got["long_account"], want["long_account"], atol=1e-4)
            assert await client.fetch_long_short_ratio(PAIR, "1h") == []  # no 1h file: nothing, not zeros

            out = tmp_path / "store"
            result = await download_long_short_ratio(client, out, PAIR, start - 10 * FIVE_MIN, clock + 10 ** 9)
            assert result.path == ratio_path(out, PAIR, "5m") and result.path.exists()
            saved = load_long_short_ratio(out, PAIR)
            assert len(saved) == 601 and result.added == 601
            assert saved["timestamp"].is_monotonic_increasing and not result.gaps
            again = await download_long_short_ratio(client, out, PAIR, start, clock + 10 ** 9)
            assert again.added == 0  # incremental: nothing new at the same clock
        finally:
            await client.close()


def test_missing_ratio_file_loads_as_an_empty_frame(tmp_path: Path):
    df = load_long_short_ratio(tmp_path, PAIR)
    assert df.empty and list(df.columns) == ["timestamp", "long_short_ratio", "long_account", "short_account"]


@pytest.mark.parametrize("bad", [{"timestamp": 1}, {"timestamp": 1, "longShortRatio": "x", "longAccount": "0.5",
                                                    "shortAccount": "0.5"}])
def test_rows_lacking_a_figure_are_dropped_not_zeroed(bad):
    assert rows_to_frame([bad]).empty


def test_bsmart_download_ratio_against_the_simulator(tmp_path: Path, write_config, capsys):
    from bot.cli import main
    from trader.sim.server import SimulatorThread

    start = 1_746_500_000_000 // FIVE_MIN * FIVE_MIN
    data_dir, _ = _data_dir_with_ratio(tmp_path, start, 2000)
    clock = start + 300 * FIVE_MIN
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[PAIR], data_dir=data_dir,
                                   start_ms=clock)) as sim:
        config = write_config({"exchange": {"api_url": sim.rest_url}, "user_data_dir": str(tmp_path / "ud")})
        code = main(["download", "--config", str(config), "--pairs", "BTC", "--timeframes", "1m",
                     "--timerange", "20250506-20250507", "--ratio"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "BTC/USDT:USDT long/short ratio 5m:" in out.out
    stored = load_long_short_ratio(tmp_path / "ud/data/binance/futures", PAIR)
    assert len(stored) and int(stored.timestamp.max()) <= clock
