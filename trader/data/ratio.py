"""Binance's global long/short account ratio (GET /futures/data/globalLongShortAccountRatio) in the store.

One Parquet file per pair and period beside the candles: ``<dir>/BTC_USDT_USDT-5m-long_short_ratio.parquet`` with
``timestamp`` (int ms, as Binance stamps the row), ``long_short_ratio``, ``long_account``, ``short_account``
(float64; the accounts are fractions, e.g. 0.6622). Binance keeps only the latest 30 days, so history exists only
where someone downloaded it in time; a missing file means "unknown", never "balanced".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from trader.config.pairs import file_stem
from trader.data.formats import find_file, read_frame, write_parquet

RATIO_COLUMNS = ["timestamp", "long_short_ratio", "long_account", "short_account"]
RATIO_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
RATIO_HISTORY_MS = 30 * 86_400_000  # Binance answers only for the latest 30 days
RATIO_PAGE = 500  # the endpoint's maximum limit


def ratio_path(data_dir: Path, pair: str, period: str = "5m") -> Path:
    return Path(data_dir) / f"{file_stem(pair)}-{period}-long_short_ratio.parquet"


def empty_ratio_frame() -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.Series(dtype="int64"),
                         **{c: pd.Series(dtype="float64") for c in RATIO_COLUMNS[1:]}})


def load_long_short_ratio(data_dir: Path, pair: str, period: str = "5m", start_ms: int | None = None,
                          end_ms: int | None = None) -> pd.DataFrame:
    """Stored rows in [start_ms, end_ms); an empty frame (not zeros) when nothing was stored."""
    found = find_file(ratio_path(data_dir, pair, period).with_suffix(""))
    if found is None:
        return empty_ratio_frame()
    df = read_frame(found)
    if start_ms is not None:
        df = df[df["timestamp"] >= start_ms]
    if end_ms is not None:
        df = df[df["timestamp"] < end_ms]
    return df.reset_index(drop=True)


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Binance's rows (strings) → the stored shape. Rows lacking a figure are dropped, not zero-filled."""
    out = []
    for r in rows:
        try:
            out.append((int(r["timestamp"]), float(r["longShortRatio"]), float(r["longAccount"]),
                        float(r["shortAccount"])))
        except (KeyError, TypeError, ValueError):
            continue
    if not out:
        return empty_ratio_frame()
    return pd.DataFrame(out, columns=RATIO_COLUMNS)


def frame_to_rows(df: pd.DataFrame, symbol: str) -> list[dict[str, Any]]:
    """The stored shape → Binance's answer (the simulator serves it this way)."""
    return [{"symbol": symbol, "longShortRatio": f"{r:.4f}", "longAccount": f"{la:.4f}", "shortAccount": f"{sa:.4f}",
             "timestamp": int(t)}
            for t, r, la, sa in zip(df["timestamp"].tolist(), df["long_short_ratio"].tolist(),
                                    df["long_account"].tolist(), df["short_account"].tolist(), strict=True)]


def save_long_short_ratio(df: pd.DataFrame, data_dir: Path, pair: str, period: str = "5m") -> Path:
    path = ratio_path(data_dir, pair, period)
    write_parquet(df[RATIO_COLUMNS].sort_values("timestamp").drop_duplicates("timestamp", keep="last")
                  .reset_index(drop=True), path)
    return path
