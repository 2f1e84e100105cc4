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
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

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
                    action=action,
                    arguments=arguments or {},
                    outcome=outcome,
                    detail=detail,
                )
            )

    def recent(self, limit: int = 20) -> list[AuditRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
            return [
                AuditRecord(r.time, Actor(r.source, r.user_id, r.role), r.action, r.arguments, r.outcome, r.detail)
                for r in rows
            ]
