"""Timeframe arithmetic. Binance timeframes are whole minutes here (1m … 1d)."""

from __future__ import annotations

_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeframe_ms(timeframe: str) -> int:
    """``"15m"`` → 900000. Raises ``ValueError`` for anything else than ``<n>m|h|d``."""
    unit = timeframe[-1:]
    count = timeframe[:-1]
    if unit not in _UNITS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"unknown timeframe {timeframe!r} (use e.g. 1m, 5m, 1h, 4h)")
    return int(count) * _UNITS[unit]
