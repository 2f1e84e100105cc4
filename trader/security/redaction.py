"""Redaction of secrets from log records and from any text that leaves the process (bot messages included)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MASK = "***"
# Shorter values would mask ordinary words; real keys and tokens are far longer.
MIN_SECRET_LEN = 6


class Redactor:
    """Replaces every registered secret by ``***``. Thread-safe; secrets can be added while running."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        with self._lock:
            merged = set(self._secrets) | {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no handler can write a secret: message, arguments, exception and stack text.

    Attach it to handlers, not loggers: logger filters do not see records propagated from child loggers.
    """

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must still be logged, and still redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True
