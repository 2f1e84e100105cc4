from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.cli import main
from tests.exchange.conftest import make_client
from trader.data.download import download_candles, download_funding
from trader.data.formats import DataFileError, read_frame
from trader.data.store import bundled_data_dir, find_gaps, load_candles, load_funding, resample, split_on_gaps
from trader.data.timerange import parse_timerange
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer, SimulatorThread

DAY = 86_400_000
MAY4 = 1746316800000  # 2025-05-04T00:00Z
MAY5 = MAY4 + 86_400_000  # the shipped data starts 2025-05-04 15:33, so whole days start here
BTC = "BTC/USDT:USDT"


def _candles(start: int, n: int, step: int = 60_000) -> pd.DataFrame:
    ts = start + np.arange(n, dtype="int64") * step
    price = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"timestamp": ts, "open": price, "high": price + 2, "low": price - 1, "close": price + 1,
                         "volume": np.ones(n)})


def test_resample_aligns_to_the_epoch_and_drops_incomplete_bars() -> None:
    df = _candles(MAY4 + 3 * 60_000, 11)  # 00:03 … 00:13
    out = resample(df, "1m", "5m")
    assert out["timestamp"].tolist() == [MAY4 + 5 * 60_000]  # only 00:05–00:09 is complete
    bar = out.iloc[0]
    src = df[(df.timestamp >= MAY4 + 5 * 60_000) & (df.timestamp < MAY4 + 10 * 60_000)]
    assert (bar.open, bar.close) == (src.open.iloc[0], src.close.iloc[-1])
    assert (bar.high, bar.low, bar.volume) == (src.high.max(), src.low.min(), 5.0)


def test_resample_never_invents_a_bar_across_a_hole() -> None:
    df = pd.concat([_candles(MAY4, 60), _candles(MAY4 + 62 * 60_000, 58)])  # 00:60 and 00:61 missing
    hourly = resample(df, "1m", "1h")
    assert hourly["timestamp"].tolist() == [MAY4]  # the second hour lacks two candles: no bar
    assert [g.missing for g in find_gaps(df["timestamp"], "1m")] == [2]
    assert [len(p) for p in split_on_gaps(df, "1m")] == [60, 58]
    with pytest.raises(ValueError):
        resample(df, "5m", "7m")


def test_real_data_resamples_to_binance_hours() -> None:
    df = load_candles(bundled_data_dir(), BTC, "1m", start_ms=MAY5, end_ms=MAY5 + DAY)
    hourly = resample(df, "1m", "1h")
    four = resample(df, "1m", "4h")
    assert len(hourly) == 24 and len(four) == 6
    assert (hourly["timestamp"] % 3_600_000 == 0).all()
    assert four["high"].iloc[0] == hourly["high"].iloc[:4].max()


def test_freqtrade_feather_and_json_files_are_read(tmp_path: Path) -> None:
    df = _candles(MAY4, 10)
    ft = df.assign(date=pd.to_datetime(df.timestamp, unit="ms", utc=True)).drop(columns=["timestamp"])
    ft[["date", "open", "high", "low", "close", "volume"]].to_feather(tmp_path / "ETH_USDT_USDT-1m-futures.feather")
    (tmp_path / "SOL_USDT_USDT-1m-futures.json").write_text(json.dumps(df.values.tolist()))
    funding = pd.DataFrame({"date": pd.to_datetime([MAY4, MAY4 + 8 * 3_600_000], unit="ms", utc=True),
                            "open": [0.0001, -0.0002], "high": 0.0, "low": 0.0, "close": 0.0, "volume": 0.0})
    funding.to_feather(tmp_path / "ETH_USDT_USDT-8h-funding_rate.feather")
    eth = load_candles(tmp_path, "ETH/USDT:USDT", "1m")
    sol = load_candles(tmp_path, "SOL/USDT:USDT", "1m")
    assert eth["timestamp"].tolist() == sol["timestamp"].tolist() == df["timestamp"].tolist()
    assert eth["close"].tolist() == df["close"].tolist()
    assert load_funding(tmp_path, "ETH/USDT:USDT")["funding_rate"].tolist() == [0.0001, -0.0002]


def test_broken_files_raise_a_named_error(tmp_path: Path) -> None:
    bad = tmp_path / "X_USDT_USDT-1m-futures.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DataFileError, match="X_USDT_USDT-1m-futures.parquet: cannot be read"):
        read_frame(bad)
    with pytest.raises(FileNotFoundError, match="no futures 1m candles for DOGE"):
        load_candles(tmp_path, "DOGE/USDT:USDT", "1m")


def test_timerange_parsing() -> None:
    tr = parse_timerange("20250504-20250603")
    assert (tr.start_ms, str(tr)) == (MAY4, "20250504-20250603")
    assert parse_timerange("20250504-").end_ms is None
    for bad in ("2025-05-04", "20250603-20250504", "-", "20251350-"):
        with pytest.raises(ValueError):
            parse_timerange(bad)


@pytest.fixture
async def sim():
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=[BTC])) as server:
        yield server


async def test_download_is_incremental_and_matches_the_source(sim, tmp_path: Path) -> None:
    client = make_client(sim)
    half = 12 * 3_600_000
    progress: list[tuple[int, int]] = []
    try:
        first = await download_candles(client, tmp_path, BTC, "1m", MAY5, MAY5 + half,
                                       progress=lambda label, d, t: progress.append((d, t)))
        assert (first.added, first.total, first.gaps) == (720, 720, [])
        assert progress[-1][0] == progress[-1][1]
        stored = load_candles(tmp_path, BTC, "1m")
        real = load_candles(bundled_data_dir(), BTC, "1m", start_ms=MAY5, end_ms=MAY5 + half)
        np.testing.assert_allclose(stored[["open", "high", "low", "close"]], real[["open", "high", "low", "close"]])
        again = await download_candles(client, tmp_path, BTC, "1m", MAY5, MAY5 + half)
        assert again.added == 0
        later = await download_candles(client, tmp_path, BTC, "1m", MAY5, MAY5 + half + 2 * 3_600_000)
        assert later.added == 120 and later.total == 840
        # Asking past the exchange's "now" stores only closed candles.
        now = await client.fetch_time()
        full = await download_candles(client, tmp_path, BTC, "1m", MAY5, MAY5 + DAY)
        assert int(read_frame(full.path)["timestamp"].iloc[-1]) + 60_000 <= now
        mark = await download_candles(client, tmp_path, BTC, "1h", MAY5, MAY5 + half, mark=True)
        assert mark.total == 12 and "volume" not in read_frame(mark.path).columns
        funding = await download_funding(client, tmp_path, BTC, MAY5, MAY5 + half)
        real_funding = load_funding(bundled_data_dir(), BTC, MAY5, MAY5 + half)
        assert funding.total == len(real_funding) == 2
        assert load_funding(tmp_path, BTC)["funding_rate"].tolist() == pytest.approx(real_funding["funding_rate"].tolist())
    finally:
        await client.close()


def test_bsmart_download_against_the_simulator(tmp_path: Path, write_config, capsys) -> None:
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC])) as sim:
        sim.step(DAY)  # the whole of May 5 is history now
        config = write_config({"exchange": {"api_url": sim.rest_url}, "user_data_dir": str(tmp_path / "ud")})
        code = main(["download", "--config", str(config), "--pairs", "BTC", "--timeframes", "1m,1h",
                     "--timerange", "20250505-20250506", "--funding"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "BTC/USDT:USDT 1m futures: 1440 new" in out.out
    assert "BTC/USDT:USDT 1h futures: 24 new" in out.out
    assert (tmp_path / "ud/data/binance/futures/BTC_USDT_USDT-1m-futures.parquet").exists()
    assert main(["download", "--pairs", "BTC-USD", "--days", "1"]) == 2
