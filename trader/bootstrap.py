"""Open what every entry point needs: redaction, logging, the database (migrated) and its stores."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from trader.config.schema import Settings
from trader.logging_setup import setup_logging
from trader.persistence.audit import AuditLog
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.persistence.runtime_state import RuntimeStateStore
from trader.security.redaction import Redactor, guard_engine

log = logging.getLogger(__name__)


@dataclass
class Core:
    settings: Settings
    redactor: Redactor
    engine: Engine
    sessions: sessionmaker[Session]
    runtime_state: RuntimeStateStore
    audit: AuditLog

    def close(self) -> None:
        self.engine.dispose()


def open_core(settings: Settings, *, console_logging: bool = True, file_logging: bool = True) -> Core:
    redactor = Redactor(settings.secrets())
    setup_logging(settings.log_level, settings.logs_dir if file_logging else None, redactor, console=console_logging)
    engine = make_engine(settings.resolved_db_url)
    # Every statement on this engine now passes the redactor that knows the configured secrets (and any added
    # later, such as the bot token): no table can hold one, whichever code writes it.
    guard_engine(engine, redactor)
    upgrade(engine)  # migrations run at every start, so an upgraded install keeps its users' data
    sessions = make_session_factory(engine)
    return Core(settings, redactor, engine, sessions, RuntimeStateStore(sessions, redactor),
                AuditLog(sessions, redactor))
