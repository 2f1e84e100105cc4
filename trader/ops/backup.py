"""Backups of a deployment's state: the ledger database, the models directory and the config file.

One backup is one directory ``<backups>/<UTC timestamp>/`` holding ``ledger.sqlite`` (SQLite's online backup API,
so a running main job keeps writing while it is taken and the copy is consistent), ``models/`` when
``user_data/models`` exists, ``config.json`` when a config file is in use, and ``manifest.json``: the time, row
counts per table and a SHA-256 of every file. It is built under a hidden ``.partial`` name and renamed when
complete, so an interrupted backup is never taken for a good one. Rotation keeps the newest ``backup.keep``.

A live database that fails its integrity check is not backed up: a corrupt copy would rotate out a good one.

``verify_backup`` restores into a temporary directory and checks it there (checksums, ``PRAGMA integrity_check``,
row counts against the manifest) without touching the backup. ``restore_backup`` puts a verified backup in place;
what it replaces is moved aside, never deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from trader.config.schema import Settings

log = logging.getLogger(__name__)

FORMAT = 1
LEDGER = "ledger.sqlite"
MANIFEST = "manifest.json"
CONFIG = "config.json"
MODELS = "models"
NAME = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class BackupError(Exception):
    """A backup or restore cannot be done; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class Backup:
    path: Path
    created_at: dt.datetime
    tables: dict[str, int]
    has_models: bool
    has_config: bool

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Verification:
    backup: Path
    problems: list[str] = field(default_factory=list)
    tables: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # table -> (manifest, restored copy)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Restored:
    backup: Path
    database: Path
    database_aside: Path | None  # where the database it replaced was moved
    models_aside: Path | None
    config_copy: Path | None  # the backup's config, for the user to compare or copy by hand


# -- paths and SQLite helpers ---------------------------------------------------------------------------------------

def sqlite_path(settings: Settings) -> Path:
    """The ledger's file; ``BackupError`` when ``db_url`` is not a file-backed SQLite database."""
    url = make_url(settings.resolved_db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError(f"backups cover a SQLite ledger only; db_url is {url.render_as_string(hide_password=True)} "
                          "(use that database's own backup tools)")
    return Path(url.database)


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check``: "ok", or the problems it found (a file that is not a database included)."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"
    text = "; ".join(str(r[0]) for r in rows[:10])
    return "ok" if text == "ok" else text


def table_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {name: int(connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]) for name in names}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 for every file under ``root`` except the manifest."""
    return {p.relative_to(root).as_posix(): _sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# -- making and listing backups -------------------------------------------------------------------------------------

def create_backup(settings: Settings, config_path: Path | None = None, *, now: dt.datetime | None = None,
                  keep: int | None = None) -> Backup:
    """Take a backup now and rotate; ``BackupError`` says why not (and leaves the existing backups alone)."""
    db = sqlite_path(settings)
    if not db.is_file():
        raise BackupError(f"there is no database at {db} to back up")
    now = now or dt.datetime.now(dt.timezone.utc)
    root = settings.backups_dir
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in root.glob(".*.partial"):  # left by a backup that was interrupted
        shutil.rmtree(stale, ignore_errors=True)
    name = _stamp(now)
    n = 0
    while (root / name).exists():
        n += 1
        name = f"{_stamp(now)}-{n}"
    work = root / f".{name}.partial"
    work.mkdir(mode=0o700)
    try:
        counts = _copy_database(db, work / LEDGER)
        if settings.models_dir.is_dir():
            shutil.copytree(settings.models_dir, work / MODELS)
        if config_path is not None and Path(config_path).is_file():
            shutil.copy2(config_path, work / CONFIG)
        manifest = {
            "format": FORMAT,
            "created_at": now.astimezone(dt.timezone.utc).isoformat(),
            "database": {"source": str(db), "file": LEDGER, "tables": counts},
            "config": {"source": str(config_path), "file": CONFIG} if (work / CONFIG).exists() else None,
            "models": MODELS if (work / MODELS).exists() else None,
            "files": _files(work),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(work, root / name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    removed = rotate(root, keep if keep is not None else settings.backup.keep)
    log.info("backup %s written (%d tables, %d rows)%s", root / name, len(counts), sum(counts.values()),
             f"; removed {', '.join(removed)}" if removed else "")
    return read_backup(root / name)


def _copy_database(db: Path, target: Path) -> dict[str, int]:
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # read-only: backing up never creates or writes a db
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            # The copy as one self-contained file (a WAL-mode source would make it expect a -wal beside it).
            copy.execute("PRAGMA journal_mode=DELETE")
            check = "; ".join(str(r[0]) for r in copy.execute("PRAGMA integrity_check").fetchall()[:10])
            if check != "ok":
                raise BackupError(f"the database {db} fails its integrity check ({check}); no backup was written, "
                                  "the existing ones are kept")
            return table_counts(copy)
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database {db} cannot be read ({exc}); no backup was written") from None
    finally:
        source.close()


def read_backup(path: Path) -> Backup:
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
        return Backup(path=Path(path), created_at=dt.datetime.fromisoformat(manifest["created_at"]),
                      tables={str(k): int(v) for k, v in manifest["database"]["tables"].items()},
                      has_models=bool(manifest.get("models")), has_config=bool(manifest.get("config")))
    except FileNotFoundError:
        raise BackupError(f"{path} is not a backup (no {MANIFEST})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{path}/{MANIFEST} cannot be read: {type(exc).__name__}: {exc}") from None


def list_backups(root: Path) -> list[Path]:
    """Complete backups under ``root``, oldest first."""
    if not Path(root).is_dir():
        return []
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and NAME.match(p.name) and (p / MANIFEST).is_file())


def rotate(root: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups; returns the names removed."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    doomed = list_backups(root)[:-keep]
    for path in doomed:
        shutil.rmtree(path)
    return [p.name for p in doomed]


def resolve_backup(settings: Settings, name: str | None) -> Path:
    """A backup named on the command line: a path, a name under the backups directory, or the newest."""
    if name is None:
        found = list_backups(settings.backups_dir)
        if not found:
            raise BackupError(f"there are no backups in {settings.backups_dir}")
        return found[-1]
    direct = Path(name)
    for candidate in (direct, settings.backups_dir / name):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise BackupError(f"no backup named {name!r} (neither {direct} nor {settings.backups_dir / name} holds a "
                      f"{MANIFEST}; `bsmart backup --list` shows them)")


# -- verifying and restoring ----------------------------------------------------------------------------------------

def verify_backup(path: Path) -> Verification:
    """Restore into a temporary directory and check it there; the backup itself is only read."""
    path = Path(path)
    result = Verification(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        expected_files: dict[str, str] = dict(manifest["files"])
        expected_tables: dict[str, int] = {str(k): int(v) for k, v in manifest["database"]["tables"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"{MANIFEST}: cannot be read ({type(exc).__name__}: {exc})")
        return result
    with tempfile.TemporaryDirectory(prefix="bsmart-verify-") as scratch:
        copy = Path(scratch) / "restored"
        shutil.copytree(path, copy)
        actual = _files(copy)
        for rel, digest in sorted(expected_files.items()):
            if rel not in actual:
                result.problems.append(f"{rel}: missing")
            elif actual[rel] != digest:
                result.problems.append(f"{rel}: checksum differs from the manifest (the file changed or is damaged)")
        for rel in sorted(set(actual) - set(expected_files)):
            result.problems.append(f"{rel}: not in the manifest")
        ledger = copy / LEDGER
        if not ledger.is_file():
            result.problems.append(f"{LEDGER}: missing")
            return result
        check = integrity(ledger)
        if check != "ok":
            result.problems.append(f"{LEDGER}: integrity check failed: {check}")
            return result
        connection = sqlite3.connect(ledger)
        try:
            found = table_counts(connection)
        finally:
            connection.close()
    for table in sorted(set(expected_tables) | set(found)):
        want, got = expected_tables.get(table), found.get(table)
        result.tables[table] = (want if want is not None else -1, got)
        if want != got:
            result.problems.append(f"table {table}: manifest {want if want is not None else 'absent'}, "
                                   f"restored copy {got if got is not None else 'absent'}")
    return result


def latest_good_backup(root: Path) -> tuple[Path, Verification] | None:
    """The newest backup that verifies (older ones are tried when newer ones are damaged)."""
    for path in reversed(list_backups(root)):
        verification = verify_backup(path)
        if verification.ok:
            return path, verification
        log.warning("backup %s is not usable: %s", path, "; ".join(verification.problems))
    return None


def move_aside(path: Path, label: str, now: dt.datetime) -> Path | None:
    """Rename ``path`` (and a SQLite file's -wal/-shm) to ``<name>.<label>-<stamp>``; None when it does not exist."""
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.{label}-{_stamp(now)}")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{label}-{_stamp(now)}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def install_database(backup: Path, db: Path) -> None:
    """Copy the backup's ledger to ``db`` (through a temporary name in the same directory, then a rename)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.restoring")
    shutil.copy2(Path(backup) / LEDGER, tmp)
    os.replace(tmp, db)


def restore_backup(settings: Settings, backup: Path, *, now: dt.datetime | None = None) -> Restored:
    """Put a verified backup's ledger and models in place. The caller holds the run lock (no main job running).

    The config file is not overwritten: a restore must not change live trading settings behind the user's back;
    the backup's copy is named in the result."""
    now = now or dt.datetime.now(dt.timezone.utc)
    verification = verify_backup(backup)
    if not verification.ok:
        raise BackupError(f"{backup} does not verify, nothing was restored: " + "; ".join(verification.problems))
    db = sqlite_path(settings)
    db_aside = move_aside(db, "before-restore", now)
    install_database(backup, db)
    models_aside = None
    if (Path(backup) / MODELS).is_dir():
        models_aside = move_aside(settings.models_dir, "before-restore", now)
        shutil.copytree(Path(backup) / MODELS, settings.models_dir)
    config = Path(backup) / CONFIG
    log.warning("restored %s into %s (previous database kept at %s)", backup, db, db_aside)
    return Restored(Path(backup), db, db_aside, models_aside, config if config.is_file() else None)
