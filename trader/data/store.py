"""Reading the candle store.

Files follow freqtrade's naming under a data directory (``<dir>/BTC_USDT_USDT-1m-futures.parquet``,
``-1h-mark.parquet``, ``-8h-funding_rate.parquet``), the layout of ``../shared/data/futures`` and of
``user_data/data/binance/futures``. Frames keep Binance's shape: ``timestamp`` is the candle's open time in
integer milliseconds UTC. Gaps are reported, never filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from trader.config.pairs import file_stem
from trader.data.formats import find_file, read_frame
from trader.data.timeframes import timeframe_ms

OHLCV = ["timestamp", "open", "high", "low", "close", "volume"]


def bundled_data_dir() -> Path:
    """The small real dataset shipped inside the package (BTC/ETH/SOL, May 2025)."""
    return Path(str(resources.files("trader") / "resources" / "data" / "binance" / "futures"))


def candle_path(data_dir: Path, pair: str, timeframe: str, kind: str = "futures") -> Path:
    return Path(data_dir) / f"{file_stem(pair)}-{timeframe}-{kind}.parquet"


def funding_path(data_dir: Path, pair: str) -> Path:
    return Path(data_dir) / f"{file_stem(pair)}-8h-funding_rate.parquet"


def _window(df: pd.DataFrame, start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    if start_ms is not None:
        df = df[df["timestamp"] >= start_ms]
    if end_ms is not None:
        df = df[df["timestamp"] < end_ms]
    return df.reset_index(drop=True)


def load_candles(
    data_dir: Path,
    pair: str,
    timeframe: str,
    kind: str = "futures",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Load ``kind`` ("futures" or "mark") candles for [start_ms, end_ms). Raises FileNotFoundError if absent.

    Parquet is preferred; freqtrade's feather and json files with the same name are read too.
    """
    wanted = candle_path(data_dir, pair, timeframe, kind)
    path = find_file(wanted.with_suffix(""))
    if path is None:
        raise FileNotFoundError(f"no {kind} {timeframe} candles for {pair} at {wanted}")
    df = read_frame(path)
    missing = [c for c in OHLCV[:5] if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    return _window(df, start_ms, end_ms)


def load_funding(data_dir: Path, pair: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
    """Funding settlements: ``timestamp`` (ms) and ``funding_rate``; empty frame when no file exists."""
    path = find_file(funding_path(data_dir, pair).with_suffix(""))
    if path is None:
        return pd.DataFrame({"timestamp": pd.Series(dtype="int64"), "funding_rate": pd.Series(dtype="float64")})
    return _window(read_frame(path), start_ms, end_ms)


@dataclass(frozen=True)
class Gap:
    start_ms: int  # first missing candle's open time
    end_ms: int  # open time of the candle after the hole
    missing: int


def find_gaps(timestamps: np.ndarray | pd.Series, timeframe: str) -> list[Gap]:
    """Every hole in a sorted series of open times."""
    step = timeframe_ms(timeframe)
    ts = np.asarray(timestamps, dtype="int64")
    if len(ts) < 2:
        return []
    diffs = np.diff(ts)
    holes = np.nonzero(diffs > step)[0]
    return [Gap(int(ts[i] + step), int(ts[i + 1]), int(diffs[i] // step - 1)) for i in holes]


def split_on_gaps(df: pd.DataFrame, timeframe: str) -> list[pd.DataFrame]:
    """Contiguous stretches of a candle frame: indicators and backtests must never run across a hole."""
    gaps = find_gaps(df["timestamp"], timeframe)
    if not gaps:
        return [df]
    cuts = [0] + [int(np.searchsorted(df["timestamp"].to_numpy(), g.end_ms)) for g in gaps] + [len(df)]
    return [df.iloc[a:b].reset_index(drop=True) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def resample(df: pd.DataFrame, source_tf: str, target_tf: str) -> pd.DataFrame:
    """Aggregate candles to a longer timeframe with bar boundaries aligned to the epoch, as Binance aligns them.

    A target bar is emitted only when every source bar inside it is present: a partial bar would be an invented
    candle, so incomplete bars (at the edges or around holes) are dropped.
    """
    src, dst = timeframe_ms(source_tf), timeframe_ms(target_tf)
    if dst % src:
        raise ValueError(f"cannot build {target_tf} from {source_tf}")
    if dst == src:
        return df.reset_index(drop=True)
    need = dst // src
    bucket = (df["timestamp"].to_numpy() // dst) * dst
    grouped = df.assign(timestamp=bucket).groupby("timestamp", sort=True)
    out = grouped.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"))
    if "volume" in df.columns:
        out["volume"] = grouped["volume"].sum()
    out = out[grouped.size() == need]
    return out.reset_index()
