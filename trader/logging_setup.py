"""Logging: the console plus rotating files under ``<user_data>/logs``, all in UTC, all redacted.

- ``trading.log``: everything at the configured level;
- ``errors.log``: warnings and errors only, so problems can be read without the noise;
- ``performance.log``: the ``bsmart.performance`` logger (latency, throughput), kept out of trading.log.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

from trader.security.redaction import RedactingFilter, Redactor

PERFORMANCE_LOGGER = "bsmart.performance"
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
_MAX_BYTES = 10 * 1024 * 1024
_BACKUPS = 5
_OURS = "_bsmart_handler"


def utc_formatter() -> logging.Formatter:
    formatter = logging.Formatter(FORMAT, DATEFMT)
    formatter.converter = time.gmtime  # UTC everywhere, whatever the host's zone
    return formatter


class _NotPerformance(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(PERFORMANCE_LOGGER)


def setup_logging(level: str, logs_dir: Path | None, redactor: Redactor, console: bool = True) -> None:
    """(Re)configure the root logger. Safe to call again: handlers it added before are replaced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
            handler.close()
    perf = logging.getLogger(PERFORMANCE_LOGGER)
    for handler in list(perf.handlers):
        if getattr(handler, _OURS, False):
            perf.removeHandler(handler)
            handler.close()

    formatter = utc_formatter()
    redacting = RedactingFilter(redactor)
    handlers: list[tuple[logging.Logger, logging.Handler, int]] = []
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.addFilter(_NotPerformance())
        handlers.append((root, stream, logging.NOTSET))
    if logs_dir is not None:
        logs_dir = Path(logs_dir)
        logs_dir.mkdir(parents=True, exist_ok=True)

        def rotating(name: str) -> logging.Handler:
            return logging.handlers.RotatingFileHandler(
                logs_dir / name, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
            )

        trading = rotating("trading.log")
        trading.addFilter(_NotPerformance())
        handlers.append((root, trading, logging.NOTSET))
        handlers.append((root, rotating("errors.log"), logging.WARNING))
        handlers.append((perf, rotating("performance.log"), logging.NOTSET))
    for logger, handler, handler_level in handlers:
        handler.setLevel(handler_level)
        handler.setFormatter(formatter)
        handler.addFilter(redacting)
        setattr(handler, _OURS, True)
        logger.addHandler(handler)
    root.setLevel(level)
    # Performance records go to their own file only; WARNING+ still reach errors.log through the root.
    perf.setLevel(logging.INFO)
    # Third-party chatter at DEBUG drowns the engine's own lines.
    for noisy in ("asyncio", "urllib3", "httpx", "httpcore", "matplotlib", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
