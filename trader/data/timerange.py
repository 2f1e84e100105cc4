"""``20250504-20250603`` time ranges, as freqtrade writes them: start inclusive, end exclusive, UTC days."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_RANGE = re.compile(r"^(?P<start>\d{8})?-(?P<end>\d{8})?$")


@dataclass(frozen=True)
class TimeRange:
    start_ms: int | None
    end_ms: int | None

    def __str__(self) -> str:
        def day(ms: int | None) -> str:
            return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y%m%d")

        return f"{day(self.start_ms)}-{day(self.end_ms)}"


def _day_ms(text: str) -> int:
    try:
        day = dt.datetime.strptime(text, "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYYMMDD)") from None
    return int(day.timestamp() * 1000)


def parse_timerange(text: str) -> TimeRange:
    """``20250504-20250603``, ``20250504-`` or ``-20250603``."""
    m = _RANGE.match(text.strip())
    if not m or not (m["start"] or m["end"]):
        raise ValueError(f"{text!r} is not a time range (use YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD)")
    start = _day_ms(m["start"]) if m["start"] else None
    end = _day_ms(m["end"]) if m["end"] else None
    if start is not None and end is not None and end <= start:
        raise ValueError(f"{text!r}: the end must be after the start")
    return TimeRange(start, end)


def last_days(days: int, now: dt.datetime | None = None) -> TimeRange:
    if days <= 0:
        raise ValueError("days must be positive")
    now = now or dt.datetime.now(dt.timezone.utc)
    end = int(now.timestamp() * 1000)
    return TimeRange(end - days * 86_400_000, end)
