"""Reading and writing candle files in the formats users bring: our Parquet, and freqtrade's feather and json.

freqtrade keeps a ``date`` column (datetime, UTC) where we keep ``timestamp`` (int ms), and stores funding rates as
candles whose ``open`` is the rate. Both are normalised here, so the rest of the system sees one shape.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

OHLCV = ["timestamp", "open", "high", "low", "close", "volume"]
EXTENSIONS = (".parquet", ".feather", ".json")


class DataFileError(ValueError):
    """A data file exists but cannot be used; the message names the file and the problem."""


def find_file(stem_path: Path) -> Path | None:
    """``<dir>/BTC_USDT_USDT-1m-futures`` → the first existing file among .parquet, .feather, .json."""
    for ext in EXTENSIONS:
        candidate = stem_path.with_name(stem_path.name + ext)
        if candidate.exists():
            return candidate
    return None


def _to_ms(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        # Naive datetimes are taken as UTC, as freqtrade writes them.
        return pd.to_datetime(series, utc=True).dt.as_unit("ms").astype("int64")
    return series.astype("int64")


def read_frame(path: Path) -> pd.DataFrame:
    """Read one candle or funding file into ``timestamp`` (int ms) + value columns, sorted and unique."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix == ".feather":
            df = pd.read_feather(path)
        elif path.suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            df = pd.DataFrame(rows, columns=OHLCV[: len(rows[0])] if rows else OHLCV)
        else:
            raise DataFileError(f"{path}: unknown data format {path.suffix!r}")
    except DataFileError:
        raise
    except Exception as exc:  # pyarrow, json and pandas each raise their own; the caller needs one clear error
        raise DataFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if "timestamp" not in df.columns:
        if "date" not in df.columns:
            raise DataFileError(f"{path}: neither a timestamp nor a date column")
        df = df.rename(columns={"date": "timestamp"})
    df["timestamp"] = _to_ms(df["timestamp"])
    if path.name.endswith(("funding_rate" + path.suffix,)) and "funding_rate" not in df.columns:
        if "open" not in df.columns:
            raise DataFileError(f"{path}: funding file without funding_rate or open column")
        df = df[["timestamp", "open"]].rename(columns={"open": "funding_rate"})
    return df.sort_values("timestamp").drop_duplicates("timestamp", keep="last").reset_index(drop=True)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the old file, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False, compression="zstd")
    os.replace(tmp, path)
