"""The live ledger's order journal (trader/persistence/order_journal.py): an order's rows are appended to a file
before the send and inserted by the next flush; a process killed in between leaves them for the next start; the
trade id an entry's client id carries is reserved so that nothing else takes it meanwhile."""

from __future__ import annotations

import logging
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from trader.live.ledger import Ledger, OrderRow
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Order, Trade
from trader.security.redaction import Redactor, guard_engine

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-api-secret-value-0123456789abcdef"
BTC = "BTC/USDT:USDT"


def _sessions(path: Path, revision: str = "head"):  # noqa: ANN202
    engine = make_engine(f"sqlite:///{path}")
    guard_engine(engine, Redactor([SECRET]))
    upgrade(engine, revision)
    return make_session_factory(engine)


def _journal_path(db: Path) -> Path:
    return db.with_name(db.name + "-orders.journal")


def _journal_text(db: Path) -> str:
    """The journal's lines (the file is kept at a fixed size, zeros after the last line)."""
    return _journal_path(db).read_bytes().split(b"\0", 1)[0].decode()


def _enter(ledger: Ledger, tag: str = "trend") -> int:
    def first(tid: int) -> OrderRow:
        return OrderRow(tid, f"bsm-{tid}-entry-0", BTC, "market", "buy", "entry", Decimal("0.012"), None, None,
                        False, False)

    tid = ledger.new_trade(BTC, "long", 25, enter_tag=tag, stop_price=Decimal("97000.1"),
                           time_ms=1_747_573_200_000, first_order=first)
    ledger.record_order(OrderRow(tid, f"bsm-{tid}-stop-0", BTC, "stop_market", "sell", "stop", None, None,
                                 Decimal("97000.1"), False, True))
    return tid


def _rows(sessions) -> tuple[list[tuple], list[tuple]]:  # noqa: ANN001
    with transaction(sessions) as s:
        trades = [(t.id, t.pair, t.side, t.stop_price, t.enter_tag, t.status, t.open_date)
                  for t in s.scalars(select(Trade).order_by(Trade.id))]
        orders = [(o.trade_id, o.client_order_id, o.type, o.purpose, o.amount, o.stop_price, o.close_position)
                  for o in s.scalars(select(Order).order_by(Order.id))]
    return trades, orders


def test_journalled_rows_reach_the_database_with_the_next_flush_as_the_direct_write_makes_them(
        tmp_path: Path) -> None:
    sessions = _sessions(tmp_path / "j.db")
    ledger = Ledger(sessions, strategy="master", dry_run=False, journal=True)
    assert ledger.open_trades() == {} and ledger._journal is not None
    tid = _enter(ledger, tag=f"trend {SECRET}")
    assert _rows(sessions) == ([], [])  # not yet: the order went out on the journal line
    text = _journal_text(tmp_path / "j.db")
    assert len(text.splitlines()) == 2 and f"bsm-{tid}-entry-0" in text
    assert SECRET not in text and "trend ***" in text  # the file is redacted as the database's statements are
    assert ledger.dirty
    ledger.flush()
    assert _journal_text(tmp_path / "j.db") == ""
    assert not ledger.dirty

    direct_sessions = _sessions(tmp_path / "d.db")
    direct = Ledger(direct_sessions, strategy="master", dry_run=False)  # no journal: committed before the send
    _enter(direct, tag=f"trend {SECRET}")
    got, want = _rows(sessions), _rows(direct_sessions)
    assert [r[1:] for r in got[0]] == [r[1:] for r in want[0]]
    assert [r[2:] for r in got[1]] == [r[2:] for r in want[1]]
    assert got[0][0][0] == tid and {o[0] for o in got[1]} == {tid}
    assert ledger.open_trades()[BTC].id == tid
    ledger.close()
    direct.close()


KILLED = """
import os, sys
sys.path.insert(0, {repo!r})
from tests.live.test_order_journal import _enter, _sessions
from trader.live.ledger import Ledger
from pathlib import Path
ledger = Ledger(_sessions(Path({db!r})), strategy="master", dry_run=False, journal=True)
ledger.open_trades()
print(_enter(ledger), flush=True)
os._exit(9)  # the order is on its way; the process dies before any flush
"""


def test_a_process_killed_before_the_flush_leaves_the_rows_for_the_next_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "k.db"
    out = subprocess.run([sys.executable, "-c", KILLED.format(repo=str(REPO), db=str(db))], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 9, out.stderr
    tid = int(out.stdout.strip())
    sessions = _sessions(db)
    assert _rows(sessions) == ([], [])
    restarted = Ledger(sessions, strategy="master", dry_run=False, journal=True)
    with caplog.at_level(logging.WARNING, logger="trader.live.ledger"):
        open_trades = restarted.open_trades()
    assert "2 order(s) in the journal from before the start" in caplog.text
    assert open_trades[BTC].id == tid and open_trades[BTC].stop_price == Decimal("97000.1")
    trades, orders = _rows(sessions)
    assert [t[0] for t in trades] == [tid]
    assert [o[1] for o in orders] == [f"bsm-{tid}-entry-0", f"bsm-{tid}-stop-0"]
    assert _journal_text(db) == ""
    # The restart re-places the stop under the same client id: no second row, and the next trade gets a new id.
    restarted.record_order(OrderRow(tid, f"bsm-{tid}-stop-0", BTC, "stop_market", "sell", "stop", None, None,
                                    Decimal("97000.1"), False, True))
    assert _enter(restarted) > tid
    restarted.flush()
    assert len(_rows(sessions)[1]) == 4
    restarted.close()


def test_a_crash_after_the_commit_but_before_the_journal_was_emptied_adds_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    sessions = _sessions(db)
    ledger = Ledger(sessions, strategy="master", dry_run=False, journal=True)
    ledger.open_trades()
    _enter(ledger)
    left = _journal_text(db).encode()
    ledger.flush()
    ledger.close()
    _journal_path(db).write_bytes(left)  # as if the process died between the commit and the journal's emptying
    before = _rows(sessions)
    restarted = Ledger(sessions, strategy="master", dry_run=False, journal=True)
    restarted.open_trades()
    assert _rows(sessions) == before and _journal_text(db) == ""
    restarted.close()


def test_reserved_trade_ids_are_not_given_to_rows_written_meanwhile(tmp_path: Path) -> None:
    """A backtest storing its trades (same table, SQLAlchemy's own inserts) while the engine holds reserved ids."""
    sessions = _sessions(tmp_path / "r.db")
    ledger = Ledger(sessions, strategy="master", dry_run=False, journal=True)
    ledger.open_trades()
    reserved = sorted(ledger._trade_ids)
    with transaction(sessions) as s:
        for _ in range(3):
            s.add(Trade(pair="ETH/USDT:USDT", side="short", leverage=5, amount=Decimal(1), stake=Decimal(1),
                        open_rate=Decimal(1), status="closed", strategy="bt"))
    with transaction(sessions) as s:
        others = sorted(s.scalars(select(Trade.id)).all())
    assert min(others) > max(reserved)
    tids = [_enter(ledger) for _ in range(len(reserved) + 2)]  # past the pool: more reserved on the way
    ledger.flush()
    with transaction(sessions) as s:
        assert len(set(s.scalars(select(Trade.id)).all())) == len(others) + len(tids)
    assert tids[: len(reserved)] == reserved and len(set(tids)) == len(tids)
    ledger.close()


def test_a_second_ledger_on_the_database_writes_ahead_to_it_instead(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    sessions = _sessions(tmp_path / "two.db")
    first = Ledger(sessions, journal=True)
    second = Ledger(sessions, journal=True)
    assert first.open_journal()
    with caplog.at_level(logging.WARNING, logger="trader.live.ledger"):
        assert not second.open_journal()
    assert "held by another ledger" in caplog.text
    tid = _enter(second)
    assert [t[0] for t in _rows(sessions)[0]] == [tid]  # committed before the send, as without a journal
    first.close()
    second.close()


def test_a_database_whose_trade_ids_can_be_reused_keeps_the_direct_write(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    sessions = _sessions(tmp_path / "old.db", revision="0004")
    ledger = Ledger(sessions, journal=True)
    with caplog.at_level(logging.WARNING, logger="trader.live.ledger"):
        assert not ledger.open_journal()
    assert "migration 0005 missing" in caplog.text
    tid = _enter(ledger)
    assert [t[0] for t in _rows(sessions)[0]] == [tid]
    ledger.close()


def test_migration_0005_keeps_every_row_and_reference(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path / "m.db", revision="0004")
    direct = Ledger(sessions)
    tids = [_enter(direct) for _ in range(3)]
    direct.close()
    before = _rows(sessions)
    engine = sessions.kw["bind"]
    upgrade(engine)
    assert _rows(sessions) == before
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert c.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'trades'").scalar() == max(tids)
        sql = c.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'trades'").scalar()
    assert "AUTOINCREMENT" in sql


def test_lines_past_the_mapped_size_grow_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trader.persistence.order_journal import OrderJournal

    monkeypatch.setattr(OrderJournal, "SIZE", 1024)
    db = tmp_path / "g.db"
    sessions = _sessions(db)
    ledger = Ledger(sessions, journal=True)
    ledger.open_trades()
    tids = [_enter(ledger) for _ in range(6)]  # ~12 lines of ~500 bytes
    assert _journal_path(db).stat().st_size >= 4096 and len(_journal_text(db).splitlines()) == 12
    ledger.close()  # no flush: the next start applies them
    restarted = Ledger(sessions, journal=True)
    assert set(restarted.open_trades()) == {BTC}
    assert [t[0] for t in _rows(sessions)[0]] == tids and _journal_text(db) == ""
    restarted.close()


def test_a_cut_short_last_line_is_skipped_and_a_broken_one_before_it_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sessions = _sessions(db)
    ledger = Ledger(sessions, journal=True)
    ledger.open_trades()
    tid = _enter(ledger)
    ledger.close()  # no flush: two lines in the file
    path = _journal_path(db)
    good = _journal_text(db).encode()
    path.write_bytes(good + b'{"trade":null,"order":{"client_o')
    restarted = Ledger(sessions, journal=True)
    restarted.open_trades()
    assert [o[1] for o in _rows(sessions)[1]] == [f"bsm-{tid}-entry-0", f"bsm-{tid}-stop-0"]
    restarted.close()
    path.write_bytes(b'{"trade":nu\n' + good)
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        Ledger(sessions, journal=True).open_journal()


def test_a_full_disk_refuses_the_line_and_nothing_is_journalled(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's blocks are allocated before a line is copied in: on a full disk the append raises (the order
    is then not sent) instead of the copy killing the process."""
    import errno
    import os

    from trader.persistence.order_journal import OrderJournal

    monkeypatch.setattr(OrderJournal, "SIZE", 1024)
    db = tmp_path / "full.db"
    ledger = Ledger(_sessions(db), journal=True)
    ledger.open_trades()
    _enter(ledger)  # two lines: ~1 KB, the file is full

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    for seq in range(1, 10):  # exits of the trade until one no longer fits in the file
        row = OrderRow(1, f"bsm-1-exit-{seq}", BTC, "market", "sell", "exit", Decimal("0.012"), None, None, True,
                       False)
        before, waiting = _journal_text(db), len(ledger._unapplied)
        try:
            ledger.record_order(row)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            break
    else:
        pytest.fail("the file never filled up")
    assert _journal_text(db) == before and len(ledger._unapplied) == waiting and row.cid not in ledger._journalled
    ledger.close()


def test_the_line_is_redacted_as_its_values_would_be_one_by_one() -> None:
    import datetime as dt
    import json

    from trader.persistence.order_journal import _plain, encode

    quoted = 'pa"ss\\wörd-0123456789'  # a secret whose JSON spelling differs from itself
    redact = Redactor([SECRET, quoted])
    key = "".join(chr(ord("A") + i % 26) + chr(ord("a") + i * 7 % 26) for i in range(40))  # a 80-char look-alike
    token = "123456789:" + "AbCdEfGhIjKlMnOpQrStUvWxYz_-0123456"
    entry = {"trade": {"id": 7, "pair": BTC, "enter_tag": f"trend {SECRET} {quoted}", "exit_reason": key,
                       "strategy": token, "stake": Decimal("12.5"), "note": "123456", "next": "789:abc",
                       "open_date": dt.datetime(2026, 12, 7, 17, 41, 51, 123000, tzinfo=dt.timezone.utc)},
             "order": None}
    one_by_one = {k: {c: redact(v) if isinstance(v, str) else v for c, v in row.items()}
                  if isinstance(row, dict) else row for k, row in entry.items()}
    line = encode(entry, redact)
    assert line == json.dumps(one_by_one, default=_plain, separators=(",", ":")).encode() + b"\n"
    for clear in (SECRET, key, token, json.dumps(quoted)[1:-1]):
        assert clear.encode() not in line


def _restart(db: Path) -> Ledger:
    return Ledger(_sessions(db), strategy="master", dry_run=False, journal=True)


def test_a_ledger_restored_from_an_older_backup_gives_new_trades_ids_above_the_journal_s(tmp_path: Path) -> None:
    import shutil

    db, backup = tmp_path / "r.db", tmp_path / "backup.db"
    _sessions(db).kw["bind"].dispose()
    shutil.copy(db, backup)  # a backup from before any trade
    ledger = _restart(db)
    ledger.open_trades()
    tid = _enter(ledger)
    left = _journal_text(db).encode()
    ledger.close()  # the crash: the entry's rows only in the journal
    ledger.sessions.kw["bind"].dispose()  # type: ignore[union-attr]
    for side in ("-wal", "-shm"):
        db.with_name(db.name + side).unlink(missing_ok=True)
    shutil.copy(backup, db)  # the database lost and the backup restored; the journal is what the crash left
    assert _journal_text(db).encode() == left
    restarted = _restart(db)
    assert restarted.open_trades()[BTC].id == tid  # the journal's trade, written to the restored ledger
    new = _enter(restarted)
    restarted.flush()
    assert new > tid  # not the journal's id again, although the restored ledger's sequence was behind it
    trades, orders = _rows(restarted.sessions)
    assert [t[0] for t in trades] == [tid, new]
    assert sorted((o[0], o[1]) for o in orders) == sorted(
        [(tid, f"bsm-{tid}-entry-0"), (tid, f"bsm-{tid}-stop-0"), (new, f"bsm-{new}-entry-0"),
         (new, f"bsm-{new}-stop-0")])
    restarted.close()


def test_a_journal_written_against_another_ledger_stops_the_start_and_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    ledger = _restart(db)
    ledger.open_trades()
    _enter(ledger)
    left = _journal_text(db)
    ledger.flush()
    ledger.close()
    # The same trade id, another trade: a journal from elsewhere (a copied directory, a backup from another box).
    _journal_path(db).write_bytes(left.replace(BTC, "ETH/USDT:USDT").encode())
    with pytest.raises(ValueError, match=r"does not belong to this ledger: trade #1 is BTC/USDT:USDT long .* "
                                         r"ETH/USDT:USDT long .* move the file aside, then .*bsmart reconcile"):
        _restart(db).open_trades()
    # An order for a trade the database does not hold.
    orphan = ledger._order_values(OrderRow(99, "bsm-99-stop-0", BTC, "stop_market", "sell", "stop", None, None,
                                           Decimal("97000.1"), False, True))
    from trader.persistence.order_journal import encode

    _journal_path(db).write_bytes(encode({"trade": None, "order": orphan}))
    with pytest.raises(ValueError, match=r"order bsm-99-stop-0 is for trade #99, which the database does not hold"):
        _restart(db).open_trades()
    assert _rows(_sessions(db))[0][0][1] == BTC  # nothing was written
