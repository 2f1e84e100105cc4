"""Per-user settings and role grants in the database. Synchronous: callers run them in a worker thread."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.persistence.database import transaction
from trader.persistence.models import BotRoleGrant, BotUserSettings

LEVELS = ("on", "silent", "off")
# What a new user hears about, and how loudly: money and danger ring, routine bookkeeping arrives silently.
DEFAULT_LEVELS: dict[str, str] = {
    "order_placed": "silent",
    "order_filled": "on",
    "stop_moved": "silent",
    "stop_hit": "on",
    "liquidation_warning": "on",
    "risk_action": "on",
    "risk_rule": "on",
    "latency_tier": "silent",
    "engine_state": "on",
    "error": "on",
    "health": "on",
}


@dataclass(frozen=True)
class UserSettings:
    user_id: int
    language: str
    report_time: dt.time  # in `timezone`
    timezone: str
    notifications: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LEVELS))

    def level(self, kind: str) -> str:
        # A kind the engine gained after this user saved their settings is heard, not silently lost.
        return self.notifications.get(kind, DEFAULT_LEVELS.get(kind, "on"))

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def with_changes(self, **changes: object) -> UserSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


class SettingsStore:
    """Settings users chose; anyone who never chose gets the config's defaults (and their client's language)."""

    def __init__(self, sessions: sessionmaker[Session], *, language: str, report_time: dt.time, timezone: str):
        self._sessions = sessions
        self._defaults = (language, report_time, timezone)
        self._cache: dict[int, UserSettings | None] = {}  # None: looked up, nothing stored

    def defaults(self, user_id: int, language: str | None = None) -> UserSettings:
        default_language, report_time, timezone = self._defaults
        return UserSettings(user_id, language or default_language, report_time, timezone)

    def stored(self, user_id: int) -> UserSettings | None:
        if user_id in self._cache:
            return self._cache[user_id]
        with self._sessions() as session:
            row = session.get(BotUserSettings, user_id)
            if row is None:
                self._cache[user_id] = None
                return None
            hh, mm = (int(x) for x in row.report_time.split(":"))
            found = UserSettings(row.user_id, row.language, dt.time(hh, mm), row.timezone,
                                 {**DEFAULT_LEVELS, **dict(row.notifications or {})})
        self._cache[user_id] = found
        return found

    def get(self, user_id: int, client_language: str | None = None) -> UserSettings:
        return self.stored(user_id) or self.defaults(user_id, client_language)

    def save(self, settings: UserSettings) -> None:
        with transaction(self._sessions) as session:
            row = session.get(BotUserSettings, settings.user_id)
            if row is None:
                row = BotUserSettings(user_id=settings.user_id)
                session.add(row)
            row.language = settings.language
            row.report_time = settings.report_time.strftime("%H:%M")
            row.timezone = settings.timezone
            row.notifications = dict(settings.notifications)
        self._cache[settings.user_id] = settings

    def all_stored(self) -> list[UserSettings]:
        with self._sessions() as session:
            ids = list(session.scalars(select(BotUserSettings.user_id)))
        return [s for s in (self.stored(i) for i in ids) if s is not None]


@dataclass(frozen=True)
class Grant:
    user_id: int
    role: str
    granted_by: int | None
    granted_at: dt.datetime


class RoleStore:
    """Roles granted from Telegram with /users, read through a cache the gate consults on every update."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions
        self._cache: dict[int, Grant] | None = None

    def all(self) -> dict[int, Grant]:
        if self._cache is None:
            with self._sessions() as session:
                self._cache = {r.user_id: Grant(r.user_id, r.role, r.granted_by, r.granted_at)
                               for r in session.scalars(select(BotRoleGrant))}
        return dict(self._cache)

    def grant(self, user_id: int, role: str, granted_by: int | None) -> None:
        with transaction(self._sessions) as session:
            row = session.get(BotRoleGrant, user_id)
            if row is None:
                session.add(BotRoleGrant(user_id=user_id, role=role, granted_by=granted_by))
            else:
                row.role, row.granted_by = role, granted_by
                row.granted_at = dt.datetime.now(dt.timezone.utc)
        self._cache = None

    def revoke(self, user_id: int) -> bool:
        with transaction(self._sessions) as session:
            row = session.get(BotRoleGrant, user_id)
            if row is not None:
                session.delete(row)
        self._cache = None
        return row is not None
