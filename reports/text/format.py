"""Numbers and times as text, language-neutral.

Floats from the backtester go through their shortest round-trip repr into Decimal before rounding, so a value
such as 2.675 prints as 2.68 (what a person expects) rather than 2.67 (its binary neighbour), and sums like
0.1 + 0.2 print as 0.30. Non-finite values print as "-" (the metric does not exist for that run).
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from decimal import ROUND_HALF_UP, Decimal

from reports.timeaxis import zone

Number = Decimal | float | int

DASH = "-"


def to_decimal(value: Number) -> Decimal | None:
    """Decimal of a value, None for NaN/inf. ``bool`` is refused: it is a bug upstream, not a number."""
    if isinstance(value, bool):
        raise TypeError("bool is not a number here")
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    f = float(value)
    if not math.isfinite(f):
        return None
    return Decimal(repr(f))


def _quantize(value: Decimal, places: int) -> Decimal:
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return q.copy_abs() if q.is_zero() else q  # never "-0.00"


def number(value: Number | None, places: int = 2, *, sign: bool = False, grouping: bool = True) -> str:
    if value is None:
        return DASH
    d = to_decimal(value)
    if d is None:
        return DASH
    spec = ("+" if sign else "") + ("," if grouping else "") + f".{places}f"
    return format(_quantize(d, places), spec)


def money(value: Number | None, places: int = 2) -> str:
    return number(value, places)


def signed(value: Number | None, places: int = 2) -> str:
    return number(value, places, sign=True)


def percent(fraction: Number | None, places: int = 2, *, sign: bool = False) -> str:
    """0.1234 → "12.34%"."""
    if fraction is None:
        return DASH
    d = to_decimal(fraction)
    if d is None:
        return DASH
    return number(d * 100, places, sign=sign) + "%"


def price_places(value: Number) -> int:
    """Enough places to see a tick move: BTC at 2, a 3-dollar coin at 4, sub-dollar coins at 6."""
    d = to_decimal(value)
    magnitude = abs(d) if d is not None else Decimal(0)
    return 2 if magnitude >= 100 else 4 if magnitude >= 1 else 6


def price(value: Number | None) -> str:
    if value is None or to_decimal(value) is None:
        return DASH
    return number(value, price_places(value))


def ratio(value: Number | None, places: int = 2) -> str:
    """Sharpe-like ratios: "∞" when the ratio is unbounded (no losing day), "-" when undefined."""
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return number(value, places, grouping=False)


def amount(value: Number | None) -> str:
    """Base-asset quantities exactly as held, without trailing zeros."""
    if value is None:
        return DASH
    d = to_decimal(value)
    if d is None:
        return DASH
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def duration(seconds: float | None) -> str:
    """"3d 4h", "4h 05m", "12m": compact and unit letters the same in every language the bot ships."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    total = int(round(seconds / 60))
    days, rest = divmod(total, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def local_time(moment: dt.datetime | numbers.Integral | None, tz: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC instant (aware datetime or epoch ms) shown in the user's zone. Naive datetimes are taken as UTC."""
    if moment is None:
        return DASH
    if isinstance(moment, numbers.Integral):
        moment = dt.datetime.fromtimestamp(int(moment) / 1000, dt.timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone(tz)).strftime(pattern)


def short_pair(pair: str) -> str:
    """"BTC/USDT:USDT" → "BTC/USDT": the settle currency is always USDT here and costs width on a phone."""
    return pair.split(":")[0]
