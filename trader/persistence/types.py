"""Column types that keep money exact and time in UTC on every backend, SQLite included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator


class Money(TypeDecorator[Decimal]):
    """A Decimal stored as text.

    SQLite has no decimal type and would round-trip through float; text keeps every digit the exchange sent.
    Sums and comparisons happen in Python, never in SQL.
    """

    impl = String(48)
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | str | None, dialect: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("Money columns take Decimal, not float (convert with Decimal(str(x)))")
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"Money must be finite, got {number}")
        return format(number, "f")

    def process_result_value(self, value: str | None, dialect: object) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
