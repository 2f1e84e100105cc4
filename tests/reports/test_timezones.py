"""Time axes show the user's zone: the same UTC data gets tick labels 8 hours apart in Shanghai and UTC."""

from __future__ import annotations

import datetime as dt
import re

import matplotlib.dates as mdates
import pytest

from reports.charts.candles import candle_figure
from reports.charts.equity import equity_figure
from reports.text.format import local_time
from reports.timeaxis import zone

CLOCK = re.compile(r"^(\d\d):(\d\d)$")


def _clock_ticks(ax) -> list[tuple[int, dt.datetime]]:
    """(minute of day printed on the tick, the tick's instant in UTC) for every tick labelled with a clock
    time."""
    out = []
    for value, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True):
        m = CLOCK.match(label.get_text())
        if m:
            out.append((int(m.group(1)) * 60 + int(m.group(2)), mdates.num2date(value, tz=dt.timezone.utc)))
    return out


def _offsets(ax) -> set[int]:
    ticks = _clock_ticks(ax)
    assert len(ticks) >= 2, [t.get_text() for t in ax.get_xticklabels()]
    return {(minute - when.hour * 60 - when.minute) % 1440 for minute, when in ticks}


@pytest.mark.parametrize(("tz", "offset"), [("UTC", 0), ("Asia/Shanghai", 480), ("Asia/Kolkata", 330)])
def test_candle_ticks_are_local_time(eth_window, tz, offset) -> None:
    frame, _ = eth_window
    fig = candle_figure(frame, "ETH/USDT:USDT", tz=tz)
    ax = fig.axes[0]
    assert _offsets(ax) == {offset}
    assert ax.get_xlabel() == tz  # the zone is named under the axis


def test_equity_ticks_shift_by_eight_hours(backtest) -> None:
    day = backtest.equity_ms < backtest.equity_ms[0] + 86_400_000
    labels = {}
    for tz, offset in (("UTC", 0), ("Asia/Shanghai", 480)):
        fig = equity_figure(backtest.equity_ms[day], backtest.equity[day], tz=tz)
        dd_axis = fig.axes[1]
        assert _offsets(dd_axis) == {offset}
        labels[tz] = [t.get_text() for t in dd_axis.get_xticklabels()]
    assert labels["UTC"] != labels["Asia/Shanghai"]


def test_local_time_converts_for_display_only() -> None:
    ms = 1_746_835_200_000  # 2025-05-10T00:00Z
    assert local_time(ms, "UTC") == "2025-05-10 00:00"
    assert local_time(ms, "Asia/Shanghai") == "2025-05-10 08:00"
    assert local_time(dt.datetime(2025, 5, 10, tzinfo=dt.timezone.utc), "America/New_York") == "2025-05-09 20:00"
    assert local_time(dt.datetime(2025, 5, 10), "Asia/Shanghai") == "2025-05-10 08:00"  # naive = UTC


def test_unknown_zone_is_a_clear_error(eth_window) -> None:
    with pytest.raises(ValueError, match="time zone"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="time zone"):
        candle_figure(eth_window[0], "ETH/USDT:USDT", tz="Asia/Shangai")
