"""Time axes in the user's zone. Data stays in UTC milliseconds; only the tick labels are converted."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes


def zone(tz: str) -> zoneinfo.ZoneInfo:
    """An IANA zone; a clear ValueError for a name the user mistyped rather than a KeyError deep in matplotlib."""
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (expected an IANA name such as 'Asia/Shanghai')") from None


def ms_to_num(ms: Sequence[int] | np.ndarray | int) -> np.ndarray:
    """UTC epoch milliseconds → matplotlib date numbers (days since matplotlib's epoch, UTC)."""
    arr = np.asarray(ms, dtype="int64")
    return np.asarray(mdates.date2num(arr.astype("datetime64[ms]")), dtype="float64")


def time_axis(ax: Axes, tz: str, max_ticks: int = 5, label: bool = True) -> None:
    """Few, concise ticks at round local times; the zone name under the axis so nobody guesses."""
    z = zone(tz)
    locator = mdates.AutoDateLocator(tz=z, minticks=3, maxticks=max_ticks)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=z, show_offset=True))
    if label:
        ax.set_xlabel(tz)
