"""The live ledger's order journal: an order's rows appended to a file before the order is sent.

Between a candle and its order the ledger must leave a durable trace of every order it may send, so that a restart
finds it by its client id instead of sending again (trader/live/ledger.py). Two SQLite inserts and a commit cost
~0.35 ms there; one line appended to a file costs a few microseconds, and is as durable: the write reaches the
kernel before the order leaves, which survives the process dying, and neither SQLite's WAL under synchronous=NORMAL
nor this file is synced to the disk on every write. The ledger inserts the rows once the orders are out and empties
the journal when every line is in the database; a start applies whatever lines a crash left.

One process writes a journal at a time: the writer holds an exclusive ``flock`` on it for its life, and a second
ledger on the same database (another ``bsmart run``, a restarted engine whose predecessor has not let go) finds
it taken and writes ahead to the database instead.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table

from trader.persistence.types import Money, UTCDateTime

log = logging.getLogger(__name__)


class JournalBusy(RuntimeError):
    """Another ledger holds the journal."""


def _plain(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")


def encode(entry: Mapping[str, object], redact: Callable[[str], str] | None = None) -> bytes:
    """One line: the entry's tables → their column values, decimals and datetimes as text, strings redacted as the
    database's own statements are."""
    if redact is not None:
        entry = {k: {c: redact(v) if isinstance(v, str) else v for c, v in row.items()} if isinstance(row, dict)
                 else row for k, row in entry.items()}
    return json.dumps(entry, default=_plain, separators=(",", ":")).encode() + b"\n"


def decode_row(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """A journalled row back in the column types its table declares (unknown columns refused); values already
    in them (a row journalled by this process) pass as they are."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        column = table.c[name]  # KeyError: a line that does not fit the schema is not applied silently
        if isinstance(value, str) and isinstance(column.type, Money):
            value = Decimal(value)
        elif isinstance(value, str) and isinstance(column.type, UTCDateTime):
            value = dt.datetime.fromisoformat(value)
        out[name] = value
    return out


class OrderJournal:
    """An append-only file of JSON lines, held exclusively by one writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(f"{path} is held by another ledger") from None
        self._fd: int | None = fd

    def entries(self) -> list[dict[str, Any]]:
        """What the file holds (a crash's leftovers at a start). A last line cut short, which only a full disk or
        the machine losing power can leave, is logged and skipped: its append failed, so its order was not sent."""
        with open(self.path, "rb") as f:
            data = f.read()
        out: list[dict[str, Any]] = []
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1:  # no newline after it: an append cut short
                    log.warning("order journal %s: skipping a cut-short last line (%d bytes)", self.path, len(line))
                    continue
                raise ValueError(f"order journal {self.path}: line {i + 1} is not JSON") from None
        return out

    def append(self, line: bytes) -> None:
        """Raises if the whole line did not reach the file: the order must then not be sent."""
        if self._fd is None:
            raise RuntimeError("the order journal is closed")
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"order journal {self.path}: {written} of {len(line)} bytes written")

    def clear(self) -> None:
        """Empty the file once every line is in the database (appends continue at its new end)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
