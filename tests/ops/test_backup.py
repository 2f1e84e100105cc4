"""Backups, verification, rotation, restore and the start-up recovery of a corrupt ledger, on real SQLite files
made by the real migrations; the CLI commands on top."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from trader.bootstrap import open_core
from trader.config.loader import load_settings
from trader.config.schema import Settings
from trader.ops.backup import (
    BackupError,
    create_backup,
    integrity,
    list_backups,
    restore_backup,
    verify_backup,
)
from trader.ops.recovery import DatabaseCorrupt, check_database
from trader.ops.runlock import LockedError, RunLock, holder
from trader.persistence.audit import Actor

T0 = dt.datetime(2026, 11, 20, 3, 30, tzinfo=dt.timezone.utc)


def make_settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings.model_validate({"user_data_dir": str(tmp_path / "ud"), **extra})


def ledger(settings: Settings, audits: int = 3) -> Path:
    """A migrated ledger with a few rows written through the product's own stores."""
    core = open_core(settings, console_logging=False, file_logging=False)
    try:
        for i in range(audits):
            core.audit.record(Actor("test"), f"action-{i}", {"i": i})
        core.runtime_state.set("leverage", 20, updated_by="test")
    finally:
        core.close()
    return settings.user_data_dir / "tradesv3.sqlite"


def rows(db: Path, table: str) -> int:
    connection = sqlite3.connect(db)
    try:
        return int(connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
    finally:
        connection.close()


def corrupt(db: Path, *, header: bool = False) -> None:
    data = bytearray(db.read_bytes())
    if header:
        data[0:16] = b"not a database!!"
    else:  # every page after the first: the schema survives, the tables' b-trees do not
        page = int.from_bytes(data[16:18], "big") or 65536
        for offset in range(page, len(data), page):
            data[offset:offset + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))


def test_a_backup_holds_the_ledger_models_and_config_and_verifies(tmp_path: Path, write_config) -> None:
    settings = make_settings(tmp_path)
    db = ledger(settings)
    (settings.models_dir / "xgb").mkdir(parents=True)
    (settings.models_dir / "xgb" / "model.json").write_text('{"trees": 3}')
    config = write_config({"leverage": 20})
    backup = create_backup(settings, config, now=T0)
    assert backup.path == settings.backups_dir / "20261120T033000Z"
    assert backup.has_models and backup.has_config
    assert backup.tables["audit_events"] == rows(db, "audit_events") == 3
    assert (backup.path / "models" / "xgb" / "model.json").read_text() == '{"trees": 3}'
    assert json.loads((backup.path / "config.json").read_text()) == {"leverage": 20}
    assert integrity(backup.path / "ledger.sqlite") == "ok"
    result = verify_backup(backup.path)
    assert result.ok, result.problems
    assert result.tables["audit_events"] == (3, 3)
    assert not list(settings.backups_dir.glob(".*"))  # no partial directory left behind


def test_backup_is_taken_while_the_database_is_open_and_written(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ledger(settings)
    core = open_core(settings, console_logging=False, file_logging=False)
    try:
        core.audit.record(Actor("test"), "while-open")  # in the WAL, not yet checkpointed
        backup = create_backup(settings, now=T0)
        core.audit.record(Actor("test"), "after")
    finally:
        core.close()
    assert backup.tables["audit_events"] == 4
    assert verify_backup(backup.path).ok


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, backup={"keep": 2})
    ledger(settings)
    for hour in range(4):
        create_backup(settings, now=T0 + dt.timedelta(hours=hour))
    assert [p.name for p in list_backups(settings.backups_dir)] == ["20261120T053000Z", "20261120T063000Z"]


def test_verify_finds_a_damaged_or_tampered_backup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ledger(settings)
    backup = create_backup(settings, now=T0)
    (backup.path / "ledger.sqlite").write_bytes((backup.path / "ledger.sqlite").read_bytes()[:4096])
    result = verify_backup(backup.path)
    assert not result.ok
    assert any("ledger.sqlite: checksum differs" in p for p in result.problems)

    second = create_backup(settings, now=T0 + dt.timedelta(hours=1))
    manifest = json.loads((second.path / "manifest.json").read_text())
    manifest["database"]["tables"]["audit_events"] = 99
    (second.path / "manifest.json").write_text(json.dumps(manifest))
    result = verify_backup(second.path)
    assert result.problems == ["table audit_events: manifest 99, restored copy 3"]


def test_a_corrupt_live_database_is_not_backed_up_and_rotates_nothing_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, backup={"keep": 1})
    db = ledger(settings)
    good = create_backup(settings, now=T0)
    corrupt(db)
    with pytest.raises(BackupError, match="integrity check|cannot be read"):
        create_backup(settings, now=T0 + dt.timedelta(hours=1))
    assert list_backups(settings.backups_dir) == [good.path]


def test_only_sqlite_ledgers_are_backed_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, db_url="postgresql://u:pw-hidden@db/x")
    with pytest.raises(BackupError, match="SQLite ledger only") as info:
        create_backup(settings)
    assert "pw-hidden" not in str(info.value)


def test_start_check_recovers_a_corrupt_ledger_from_the_newest_good_backup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = ledger(settings, audits=2)
    older = create_backup(settings, now=T0)
    ledger(settings, audits=1)  # one more audit row: 3
    newest = create_backup(settings, now=T0 + dt.timedelta(hours=1))
    (newest.path / "ledger.sqlite").write_bytes(b"damaged")  # the newest backup is unusable: the older one serves
    corrupt(db)
    assert integrity(db) != "ok"
    recovery = check_database(settings, now=T0 + dt.timedelta(hours=2))
    assert recovery is not None and recovery.backup == older.path
    assert integrity(db) == "ok" and rows(db, "audit_events") == 2
    assert recovery.corrupt_copy.name == "tradesv3.sqlite.corrupt-20261120T053000Z"
    assert integrity(recovery.corrupt_copy) != "ok"  # kept as it was, for inspection
    assert "restored from the backup of 2026-11-20 03:30 UTC" in recovery.describe()
    assert check_database(settings) is None  # sound now


def test_start_check_without_a_good_backup_changes_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = ledger(settings)
    corrupt(db, header=True)
    before = db.read_bytes()
    with pytest.raises(DatabaseCorrupt, match="no good backup"):
        check_database(settings)
    assert db.read_bytes() == before and list(db.parent.glob("*.corrupt-*")) == []


def test_restore_replaces_the_ledger_and_keeps_the_old_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = ledger(settings, audits=2)
    (settings.models_dir).mkdir(parents=True)
    (settings.models_dir / "m.bin").write_bytes(b"v1")
    backup = create_backup(settings, now=T0)
    ledger(settings, audits=5)
    (settings.models_dir / "m.bin").write_bytes(b"v2")
    done = restore_backup(settings, backup.path, now=T0 + dt.timedelta(days=1))
    assert rows(db, "audit_events") == 2 and (settings.models_dir / "m.bin").read_bytes() == b"v1"
    assert done.database_aside is not None and rows(done.database_aside, "audit_events") == 7
    assert done.models_aside is not None and (done.models_aside / "m.bin").read_bytes() == b"v2"


def test_the_run_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    ud = tmp_path / "ud"
    assert holder(ud) is None
    with RunLock(ud).acquire("bsmart run"):
        assert holder(ud) is not None and "bsmart run (pid" in holder(ud)
        with pytest.raises(LockedError, match="in use by bsmart run"):
            RunLock(ud).acquire("bsmart restore")
    assert holder(ud) is None


# -- the commands ---------------------------------------------------------------------------------------------------

def test_cli_backup_verify_and_restore(tmp_path: Path, write_config, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config({"user_data_dir": str(tmp_path / "ud"), "backup": {"keep": 3}})
    settings = load_settings(config, environ={})
    db = ledger(settings)
    assert main(["backup", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "backup written" in out and "config" in out
    [backup] = list_backups(settings.backups_dir)
    assert (backup / "config.json").is_file()

    assert main(["backup", "-c", str(config), "--list"]) == 0
    assert backup.name in capsys.readouterr().out

    assert main(["restore", "-c", str(config), "--verify"]) == 0  # the newest by default
    assert f"{backup.name}: OK" in capsys.readouterr().out

    assert main(["restore", "-c", str(config)]) == 2  # a real restore names its backup
    capsys.readouterr()

    with RunLock(settings.user_data_dir).acquire("bsmart run"):
        assert main(["restore", "-c", str(config), backup.name]) == 1
        assert "refused" in capsys.readouterr().err
    ledger(settings, audits=4)
    assert main(["restore", "-c", str(config), backup.name]) == 0
    assert "restored" in capsys.readouterr().out and rows(db, "audit_events") == 3

    (backup / "ledger.sqlite").write_bytes(b"x")
    assert main(["restore", "-c", str(config), "--verify", backup.name]) == 1
    assert "NOT usable" in capsys.readouterr().err
    assert main(["restore", "-c", str(config), "--verify", "nope"]) == 1
    assert "no backup named 'nope'" in capsys.readouterr().err
