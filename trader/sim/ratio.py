"""GET /futures/data/globalLongShortAccountRatio in the simulator.

Answers from the store's long/short ratio file for the symbol and period when one exists (rows up to the replay
clock only), otherwise with an empty list: the simulator has no crowd of accounts, and any number it made up
would be read by the analysis as real sentiment.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trader.data.ratio import RATIO_PERIODS, frame_to_rows, load_long_short_ratio
from trader.data.store import bundled_data_dir

if TYPE_CHECKING:
    from trader.sim.server import SimulatorServer


@functools.lru_cache(maxsize=64)
def _stored(data_dir: str, pair: str, period: str) -> pd.DataFrame:
    return load_long_short_ratio(Path(data_dir), pair, period)


def h_long_short_ratio(sim: SimulatorServer, p: dict[str, str], now: int) -> list:
    sym = sim.exchange._sym(p["symbol"])  # KeyError → −1102 (mandatory), unknown symbol → −1121
    period = p["period"]
    if period not in RATIO_PERIODS:
        raise ValueError(f"period {period!r}")
    limit = min(int(p.get("limit") or 30), 500)
    data_dir = str(sim.cfg.data_dir or bundled_data_dir())
    df = _stored(data_dir, sim.data[sym].pair, period)
    ts = df["timestamp"]
    # Never ahead of the replay clock: a replayed day must not show tomorrow's crowd.
    keep = ts <= now
    if p.get("startTime"):
        keep &= ts >= int(p["startTime"])
    if p.get("endTime"):
        keep &= ts <= int(p["endTime"])
    rows = df[keep]
    rows = rows.head(limit) if p.get("startTime") else rows.tail(limit)
    return frame_to_rows(rows, sym)
