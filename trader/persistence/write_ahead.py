"""The write-ahead inserts' connection: the rows committed between a candle and its order (trader/live/ledger.py).

On that path SQLAlchemy's per-statement machinery (execution context, compiled-cache lookup, result set-up, the
transaction object) cost more than SQLite's own insert and commit. For a SQLite file the inserts therefore run
on the DB-API connection itself, each compiled once by SQLAlchemy for its table and full column list: the column
types still convert every value (the statement's bind processors) and the engine's redactor still cleans every
string, as its ``before_cursor_execute`` hook does for all other statements. Any other database keeps a Core
connection (``CoreWriteAhead``), which is the same contract at SQLAlchemy's cost.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.exc import IntegrityError

from trader.security.redaction import guarded_by


class WriteAhead(Protocol):
    def transaction(self) -> Any: ...

    def insert(self, table: Table, values: Mapping[str, object]) -> int: ...

    def close(self) -> None: ...


@functools.cache
def _insert_of(table: Table) -> Any:
    return insert(table)  # built once per table: SQLAlchemy's compiled cache does the rest


def core_insert(conn: Connection, table: Table, values: Mapping[str, object]) -> int:
    """One row through SQLAlchemy Core; its primary key."""
    return int(conn.execute(_insert_of(table), dict(values)).inserted_primary_key[0])


class CoreWriteAhead:
    """A Core connection kept for the write-ahead inserts (PostgreSQL and anything not a SQLite file)."""

    def __init__(self, engine: Engine) -> None:
        self.conn: Connection = engine.connect()

    def transaction(self) -> Any:
        return self.conn.begin()

    def insert(self, table: Table, values: Mapping[str, object]) -> int:
        return core_insert(self.conn, table, values)

    def close(self) -> None:
        self.conn.close()


class _Compiled:
    def __init__(self, engine: Engine, table: Table, keys: tuple[str, ...]) -> None:
        compiled = insert(table).compile(dialect=engine.dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup or ())
        if set(names) != set(keys):  # a column the row does not give would need SQLAlchemy's default handling
            raise ValueError(f"{table.name}: the write-ahead row must give every column ({sorted(set(names) ^ set(keys))})")
        self.sql = compiled.string
        self.names = names
        procs = compiled._bind_processors
        self.procs: tuple[Callable[[Any], Any] | None, ...] = tuple(procs.get(n) for n in names)


class SqliteWriteAhead:
    """The write-ahead inserts on the DB-API connection of a SQLite file (the engine's pool hands it out with the
    engine's pragmas: WAL, synchronous=NORMAL, foreign keys). SQLite does not checkpoint its WAL on its own here:
    a checkpoint syncs the database file (milliseconds); the ledger's deferred flush does it.

    The ledger's deferred writes go through this same connection (``conn``, in their own transactions): a SQLite
    connection drops its page cache whenever another connection has written, and re-reading the trade and order
    tables' pages made the next write-ahead insert 3-10× slower (measured: 9 → 30 µs warm, ~100 µs in the live
    bench, after every candle's flush)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection = engine.connect()
        dbapi: sqlite3.Connection = self.conn.connection.driver_connection  # type: ignore[assignment]
        dbapi.execute("PRAGMA wal_autocheckpoint=0")
        self.cursor = dbapi.cursor()
        self.dbapi = dbapi
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._autoincrement: dict[str, bool] = {}  # table -> declared AUTOINCREMENT (reserve_ids)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.dbapi.rollback()
            raise
        self.dbapi.commit()

    def insert(self, table: Table, values: Mapping[str, object]) -> int:
        keys = tuple(values)
        c = self._compiled.get((table.name, keys))
        if c is None:
            c = self._compiled[(table.name, keys)] = _Compiled(self.engine, table, keys)
        params = [values[n] if p is None else p(values[n]) for n, p in zip(c.names, c.procs, strict=True)]
        redactor = guarded_by(self.engine)
        if redactor is not None:
            params = [redactor(v) if isinstance(v, str) else v for v in params]
        try:
            self.cursor.execute(c.sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(c.sql, params, exc) from exc
        rowid = self.cursor.lastrowid
        assert rowid is not None
        return int(rowid)

    def reserve_ids(self, table: Table, n: int, above: int = 0) -> range | None:
        """``n`` ids of ``table`` that no other row, in this process or another, will be given: the table must be
        AUTOINCREMENT (SQLite then never goes below the ``sqlite_sequence`` mark, which this raises by ``n``), and
        all of them above ``above`` (ids that rows not yet inserted already carry). None for a table declared
        without it (a database that missed migration 0005)."""
        if table.name not in self._autoincrement:  # the schema does not change while the ledger runs
            sql = self.dbapi.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                     (table.name,)).fetchone()
            self._autoincrement[table.name] = sql is not None and "AUTOINCREMENT" in sql[0].upper()
        if not self._autoincrement[table.name]:
            return None
        with self.transaction():
            # The UPDATE takes the write lock first, so no insert elsewhere can land between reading and raising.
            mark = f"max(coalesce(seq, 0), (SELECT coalesce(max(id), 0) FROM {table.name}), ?)"
            self.cursor.execute(f"UPDATE sqlite_sequence SET seq = {mark} + ? WHERE name = ?",
                                (above, n, table.name))
            if self.cursor.rowcount == 0:
                self.cursor.execute(f"INSERT INTO sqlite_sequence (name, seq) SELECT ?, max(coalesce(max(id), 0), ?) "
                                    f"+ ? FROM {table.name}", (table.name, above, n))
            top = int(self.cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                                          (table.name,)).fetchone()[0])
        return range(top - n + 1, top + 1)

    def close(self) -> None:
        self.cursor.close()
        self.conn.close()  # back to the engine's pool


def open_write_ahead(engine: Engine) -> WriteAhead:
    if engine.dialect.name == "sqlite":
        return SqliteWriteAhead(engine)
    return CoreWriteAhead(engine)
