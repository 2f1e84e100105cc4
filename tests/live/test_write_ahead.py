"""The write-ahead rows (an entry's trade and order, committed before the order is sent) written on SQLite's DB-API
connection equal the rows SQLAlchemy Core writes, pass the engine's redactor, and a duplicate client id raises
SQLAlchemy's IntegrityError (the ledger's restart path catches it) without leaving a transaction open."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from trader.live.ledger import Ledger, OrderRow
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Order, Trade
from trader.persistence.write_ahead import SqliteWriteAhead
from trader.security.redaction import Redactor, guard_engine

SECRET = "s3cr3t-api-secret-value-0123456789abcdef"


def _ledger(path: Path, *, raw: bool) -> tuple[Ledger, object]:
    engine = make_engine(f"sqlite:///{path}")
    guard_engine(engine, Redactor([SECRET]))
    upgrade(engine)
    sessions = make_session_factory(engine)
    ledger = Ledger(sessions, strategy="master", dry_run=False)
    if not raw:
        ledger._write_ahead = lambda: None  # type: ignore[method-assign]  # the session (Core) path
    return ledger, sessions


def _write(ledger: Ledger) -> None:
    def first(tid: int) -> OrderRow:
        return OrderRow(tid, f"bsm-{tid}-entry-0", "BTC/USDT:USDT", "market", "buy", "entry", Decimal("0.012"),
                        None, None, False, False)

    tid = ledger.new_trade("BTC/USDT:USDT", "long", 25, enter_tag=f"trend {SECRET}", stop_price=Decimal("97000.1"),
                           time_ms=1_747_573_200_000, first_order=first)
    ledger.record_order(OrderRow(tid, f"bsm-{tid}-stop-0", "BTC/USDT:USDT", "stop_market", "sell", "stop", None,
                                 None, Decimal("97000.1"), False, True))


def _rows(sessions) -> list[tuple]:  # noqa: ANN001
    skip = {"id", "trade_id", "client_order_id", "created_at", "updated_at"}
    with transaction(sessions) as s:
        trades = [{c: getattr(t, c) for c in Trade.__table__.columns.keys() if c != "id"}
                  for t in s.scalars(select(Trade))]
        orders = [{c: getattr(o, c) for c in Order.__table__.columns.keys() if c not in skip}
                  for o in s.scalars(select(Order).order_by(Order.id))]
    return [trades, orders]


def test_raw_rows_equal_core_rows_and_are_redacted(tmp_path: Path) -> None:
    raw, raw_sessions = _ledger(tmp_path / "raw.db", raw=True)
    core, core_sessions = _ledger(tmp_path / "core.db", raw=False)
    _write(raw)
    _write(core)
    assert isinstance(raw._wal_conn, SqliteWriteAhead)
    got, want = _rows(raw_sessions), _rows(core_sessions)
    assert got == want
    assert got[0][0]["enter_tag"] == "trend ***" and got[0][0]["stop_price"] == Decimal("97000.1")
    assert [o["purpose"] for o in got[1]] == ["entry", "stop"] and got[1][1]["close_position"] is True
    raw.close()
    core.close()


def test_a_duplicate_client_id_is_integrity_error_and_rolls_back(tmp_path: Path) -> None:
    ledger, sessions = _ledger(tmp_path / "raw.db", raw=True)
    _write(ledger)
    wa = ledger._wal_conn
    assert isinstance(wa, SqliteWriteAhead)
    with transaction(sessions) as s:
        row = s.scalars(select(Order).order_by(Order.id)).first()
        assert row is not None
        values = Ledger._order_values(OrderRow(row.trade_id, row.client_order_id, row.pair, "market", "buy",
                                               "entry", Decimal("1"), None, None, False, False))
    with pytest.raises(IntegrityError), wa.transaction():
        wa.insert(Order.__table__, values)
    assert not wa.dbapi.in_transaction
    restarted = Ledger(sessions, strategy="master", dry_run=False)  # a restart re-placing under the same id
    restarted.record_order(OrderRow(row.trade_id, row.client_order_id, row.pair, "market", "buy", "entry",
                                    Decimal("1"), None, None, False, False))
    assert restarted._order_ids[row.client_order_id] == row.id
    restarted.close()
    with transaction(sessions) as s:
        assert len(s.scalars(select(Order)).all()) == 2
    ledger.close()


def test_the_ledger_checkpoints_the_wal_at_the_start_of_a_flush_so_no_write_ahead_row_restarts_it(
        tmp_path: Path) -> None:
    """The first write after a complete checkpoint restarts the WAL and syncs its header: that must be a flush's
    write, never an order's write-ahead row. Every CHECKPOINT_EVERY flushes the flush checkpoints first, which
    keeps the WAL far below SQLite's own checkpoint threshold (1000 pages)."""
    from trader.live import ledger as ledger_module

    ledger, sessions = _ledger(tmp_path / "wal.db", raw=True)
    engine = sessions.kw["bind"]  # type: ignore[attr-defined]

    def wal_frames() -> int:
        with engine.connect() as c:  # a passive checkpoint reports the WAL's length in frames
            return int(c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1])

    frames_per_cycle = []
    for n in range(1, 2 * ledger_module.CHECKPOINT_EVERY + 1):
        _write(ledger)
        ledger.update_trade(1, amount=Decimal(n))
        ledger.flush()
        if n == 1:
            frames_per_cycle.append(wal_frames())
    # After the last checkpointing flush only that flush's frames are in the log, not 2 × CHECKPOINT_EVERY cycles'.
    assert wal_frames() <= 2 * frames_per_cycle[0]
    assert ledger._flushes == 2 * ledger_module.CHECKPOINT_EVERY


def test_a_failing_checkpoint_is_logged_and_the_flush_still_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import Connection
    from sqlalchemy.exc import OperationalError

    from trader.live import ledger as ledger_module

    ledger, sessions = _ledger(tmp_path / "locked.db", raw=True)
    monkeypatch.setattr(ledger_module, "CHECKPOINT_EVERY", 1)
    run = Connection.exec_driver_sql

    def locked(conn: Connection, statement: str, *a: object, **k: object) -> object:
        if statement.startswith("PRAGMA wal_checkpoint"):
            raise OperationalError(statement, {}, Exception("database table is locked"))
        return run(conn, statement, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "exec_driver_sql", locked)
    _write(ledger)
    ledger.update_trade(1, amount=Decimal("0.012"))
    with caplog.at_level("WARNING"):
        ledger.flush()
    assert "WAL checkpoint failed" in caplog.text
    with transaction(sessions) as s:
        assert s.scalar(select(Trade.amount).where(Trade.id == 1)) == Decimal("0.012")


def test_the_flush_writes_on_the_write_ahead_connection_so_its_page_cache_stays_valid(tmp_path: Path) -> None:
    """SQLite's ``PRAGMA data_version`` on a connection moves when another connection commits: that is when the
    connection drops its page cache, and the next order's write-ahead insert re-reads the tables' pages."""
    ledger, sessions = _ledger(tmp_path / "shared.db", raw=True)
    _write(ledger)
    wa = ledger._write_ahead()
    assert isinstance(wa, SqliteWriteAhead)

    def version() -> int:
        return int(wa.dbapi.execute("PRAGMA data_version").fetchone()[0])

    before = version()
    for n in range(3):
        ledger.update_trade(1, amount=Decimal("0.012") + n)
        ledger.record_fill("bsm-1-entry-0", 1, "BTC/USDT:USDT", f"fill-{n}", "buy", Decimal("97500.5"),
                           Decimal("0.004"), Decimal("0.02"), False, Decimal("0"), 1_747_573_200_000 + n)
        ledger.flush()
    assert version() == before
    with transaction(sessions) as s:  # committed: another connection reads it
        assert s.scalar(select(Trade.amount).where(Trade.id == 1)) == Decimal("2.012")
    with transaction(sessions) as s:  # a write elsewhere still shows (the check itself works)
        s.get(Trade, 1).fees = Decimal("1")
    assert version() != before
