"""The audit log: every mutating action, who asked for it, and how it ended."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.persistence.database import transaction
from trader.persistence.models import AuditEvent
from trader.persistence.types import utcnow
from trader.security.redaction import Redactor

OUTCOMES = frozenset({"ok", "refused", "failed", "denied"})


@dataclass(frozen=True)
class Actor:
    source: str  # telegram | cli | engine | test
    user_id: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    time: dt.datetime
    actor: Actor
    action: str
    arguments: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"
    detail: str = ""


class AuditLog:
    """Writes audit rows with every text redacted: arguments (keys and values, nested), action and detail.

    Refused commands are stored with what the user typed, and a user may have typed a key or token; the engine's
    guard (``guard_engine``) masks them again below this, so a log built on a bare engine is covered too.
    """

    def __init__(self, sessions: sessionmaker[Session], redactor: Redactor | None = None):
        self._sessions = sessions
        self._redact = redactor if redactor is not None else Redactor()

    def record(
        self, actor: Actor, action: str, arguments: dict[str, Any] | None = None, outcome: str = "ok", detail: str = ""
    ) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        with transaction(self._sessions) as session:
            session.add(
                AuditEvent(
                    time=utcnow(),
                    user_id=actor.user_id,
                    role=actor.role,
                    source=actor.source,
                    action=self._redact(action),
                    arguments=self._redact.value(dict(arguments or {})),
                    outcome=outcome,
                    detail=self._redact(detail),
                )
            )

    def recent(self, limit: int = 20) -> list[AuditRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
            return [
                AuditRecord(r.time, Actor(r.source, r.user_id, r.role), r.action, r.arguments, r.outcome, r.detail)
                for r in rows
            ]
