"""Typed access to RuntimeState: what was changed at run time survives a restart and wins over the config file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.persistence.database import transaction
from trader.persistence.models import RuntimeState
from trader.security.redaction import Redactor

# The keys the system uses; a value outside this set is a programming error, caught at the call.
KEYS = frozenset({"leverage", "pair_whitelist", "paused", "stopped", "last_start", "last_stop", "user_settings",
                  "strategy_params", "flatten_pending", "wallet_baseline", "strategy"})


class RuntimeStateStore:
    """Values are stored redacted (strings anywhere inside them), like everything else written to the database."""

    def __init__(self, sessions: sessionmaker[Session], redactor: Redactor | None = None):
        self._sessions = sessions
        self._redact = redactor if redactor is not None else Redactor()

    def get(self, key: str, default: Any = None) -> Any:
        _check(key)
        with self._sessions() as session:
            row = session.get(RuntimeState, key)
            return default if row is None else row.value

    def set(self, key: str, value: Any, updated_by: str = "") -> None:
        _check(key)
        value, updated_by = self._redact.value(value), self._redact(updated_by)
        with transaction(self._sessions) as session:
            row = session.get(RuntimeState, key)
            if row is None:
                session.add(RuntimeState(key=key, value=value, updated_by=updated_by))
            else:
                row.value = value
                row.updated_by = updated_by

    def all(self) -> dict[str, Any]:
        with self._sessions() as session:
            return {row.key: row.value for row in session.scalars(select(RuntimeState))}


def _check(key: str) -> None:
    if key not in KEYS:
        raise KeyError(f"unknown runtime-state key {key!r}")
