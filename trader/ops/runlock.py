"""Whether a main job owns a ``user_data`` directory: an exclusive ``flock`` on ``user_data/bsmart.lock``.

The kernel drops the lock when the process ends, however it ends, so a crashed job never leaves a stale lock
behind (a pid file alone would). The file's text (pid, holder, start time) is only there to tell the user who holds
it. A restore takes the same lock, so a main job cannot start half way through one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "bsmart.lock"


class LockedError(Exception):
    """Another process holds the lock; the message names it."""


class RunLock:
    def __init__(self, user_data_dir: Path):
        self.path = Path(user_data_dir) / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self, holder: str) -> RunLock:
        """Take the lock or raise ``LockedError`` saying who has it. Never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            handle.close()
            raise LockedError(f"{self.path.parent} is in use by {who}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(user_data_dir: Path) -> str | None:
    """Who holds the lock now (its text), or None when nobody does."""
    lock = RunLock(user_data_dir)
    if not lock.path.exists():
        return None
    try:
        lock.acquire("probe")
    except LockedError as exc:
        return str(exc).split(" is in use by ", 1)[-1]
    lock.release()
    return None
