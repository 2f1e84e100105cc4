"""The database check at the start of ``bsmart run``: a corrupt ledger is replaced by the newest good backup.

The corrupt file is moved aside (``tradesv3.sqlite.corrupt-<stamp>``), never deleted. Without a good backup
nothing is moved and the start is refused: trading on an empty ledger would lose track of open trades.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from trader.config.schema import Settings
from trader.ops.backup import (
    BackupError,
    install_database,
    integrity,
    latest_good_backup,
    move_aside,
    read_backup,
    sqlite_path,
)

log = logging.getLogger(__name__)


class DatabaseCorrupt(Exception):
    """The ledger is corrupt and could not be recovered; the message says what to do."""


@dataclass(frozen=True)
class Recovery:
    database: Path
    corrupt_copy: Path  # where the corrupt file was kept
    backup: Path
    backup_time: dt.datetime
    problem: str  # what the integrity check said

    def describe(self) -> str:
        return (f"the database failed its integrity check ({self.problem[:200]}); restored from the backup of "
                f"{self.backup_time:%Y-%m-%d %H:%M} UTC ({self.backup.name}); anything recorded after it is not in "
                f"the ledger; the corrupt file is kept at {self.corrupt_copy}")


def check_database(settings: Settings, *, now: dt.datetime | None = None) -> Recovery | None:
    """None when the ledger is sound (or is not a SQLite file, or does not exist yet); a ``Recovery`` when it was
    replaced; ``DatabaseCorrupt`` when it is corrupt and no backup verifies."""
    try:
        db = sqlite_path(settings)
    except BackupError:
        return None  # another database server: its own tools look after it
    if not db.exists():
        return None
    problem = integrity(db)
    if problem == "ok":
        return None
    log.error("database %s fails its integrity check: %s", db, problem)
    found = latest_good_backup(settings.backups_dir)
    if found is None:
        raise DatabaseCorrupt(f"the database {db} is corrupt ({problem[:200]}) and there is no good backup in "
                              f"{settings.backups_dir}; nothing was changed. Restore one with `bsmart restore BACKUP` "
                              "or move the file away to start with an empty ledger")
    backup, _ = found
    now = now or dt.datetime.now(dt.timezone.utc)
    aside = move_aside(db, "corrupt", now)
    assert aside is not None  # it existed a moment ago and only this process may touch it (run lock)
    install_database(backup, db)
    recovery = Recovery(db, aside, backup, read_backup(backup).created_at, problem)
    log.error("database recovered: %s", recovery.describe())
    return recovery
