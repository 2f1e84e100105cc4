"""Redaction of secrets from log records, from any text that leaves the process (bot messages included) and from
everything written to the database (see :func:`guard_engine`).

Two kinds of things are masked:

* the configured secrets (Binance API key and secret, Telegram bot token, anything added at run time), wherever
  they appear, in any letter case (a command name is lower-cased before it is audited, for one), and in their
  JSON-escaped spelling (JSON columns are serialized before they reach the database driver);
* text that merely *looks like* a credential, configured or not: a Binance API key or secret (a run of 64 or more
  letters and digits that is not a plain hexadecimal digest) and a Telegram bot token (``<digits>:<35 of
  [A-Za-z0-9_-]>``). A user pasting some other account's key must not leave it in a log or a table either.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Shorter values would mask ordinary words; real keys and tokens are far longer.
MIN_SECRET_LEN = 6

# Binance HMAC API keys and secrets are 64 random letters and digits. Runs of 64 or more are masked whole, except
# plain hex (SHA-256 digests and the like are not credentials and are stored on purpose).
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{64,}")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
# Telegram bot token: the bot's numeric id, a colon and 35 characters of [A-Za-z0-9_-].
_TOKEN_LIKE = re.compile(r"[0-9]+:[A-Za-z0-9_-]{35}")


def _key_like(run: str) -> bool:
    # A random 64-character key uses ~40 distinct characters; a padding run or a repeated word uses a handful.
    return not _HEX.fullmatch(run) and len(set(run)) >= 16


def _mask_key_like(match: re.Match[str]) -> str:
    return MASK if _key_like(match.group(0)) else match.group(0)


def looks_like_credential(text: str) -> bool:
    return bool(_TOKEN_LIKE.search(text)) or any(_key_like(m.group(0)) for m in _KEY_LIKE.finditer(text))


def _spellings(secret: str) -> set[str]:
    """The secret and the forms it takes inside JSON text (``"`` and ``\\`` escaped, non-ASCII as ``\\uXXXX``)."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


class Redactor:
    """Replaces every registered secret and every credential look-alike by ``***``.

    Thread-safe; secrets can be added while running (the bot token, for instance, once the bot is built), and every
    holder of this object (log filter, bot, database guard) sees them at once.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._raw: frozenset[str] = frozenset()
        self._secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        with self._lock:
            accepted = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
            self._raw = self._raw | accepted
            fresh = {form for s in accepted for form in _spellings(s)}
            merged = set(self._secrets) | fresh
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))
            self._pattern = (re.compile("|".join(re.escape(s) for s in self._secrets), re.IGNORECASE)
                             if self._secrets else None)

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if len(text) >= 36:  # the shortest look-alike is a token with a one-digit id
            text = _TOKEN_LIKE.sub(MASK, text)
            text = _KEY_LIKE.sub(_mask_key_like, text)
        return text

    def secrets(self) -> frozenset[str]:
        return self._raw

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it redacted: dict keys and values, list and tuple items."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    def __bool__(self) -> bool:
        """True when configured secrets are known. Look-alikes are masked either way."""
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no handler can write a secret: message, arguments, exception and stack text.

    Attach it to handlers, not loggers: logger filters do not see records propagated from child loggers.
    """

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        # No shortcut when no secret is configured: look-alikes are masked regardless.
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


# --- the database ------------------------------------------------------------------------------------------------

_GUARD_LOCK = threading.Lock()


def guard_engine(engine: Any, redactor: Redactor) -> None:
    """Make every statement sent through ``engine`` carry only redacted text.

    A ``before_cursor_execute`` hook rewrites the driver-level parameters of every statement (ORM flushes, Core
    inserts and updates, bulk inserts, raw ``text()``), after column types have done their work, so JSON columns
    arrive here as their serialized text and are redacted too. No writer that goes through the engine can bypass
    it; lookups by a value pass the same redaction, so they still find what was stored.

    ``make_engine`` guards every engine with a look-alike-only redactor; the composition root (``open_core``) then
    hands over the process's redactor, which knows the configured secrets. Calling again swaps the redactor in
    place (keeping the secrets the previous one knew), so there is only ever one hook per engine.
    """
    from sqlalchemy import event

    with _GUARD_LOCK:
        installed: Redactor | None = getattr(engine, "_bsmart_redactor", None)
        if installed is not None:
            if installed is not redactor:
                redactor.add(*installed.secrets())
                engine._bsmart_redactor = redactor
            return

        def redact_parameters(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                              executemany: bool) -> tuple[str, Any]:
            return statement, _redact_parameters(engine._bsmart_redactor, parameters, executemany)

        engine._bsmart_redactor = redactor
        event.listen(engine, "before_cursor_execute", redact_parameters, retval=True)


def guarded_by(engine: Any) -> Redactor | None:
    return getattr(engine, "_bsmart_redactor", None)


def _redact_row(redactor: Redactor, row: Any) -> Any:
    if isinstance(row, dict):
        return {k: redactor(v) if isinstance(v, str) else v for k, v in row.items()}
    if isinstance(row, (tuple, list)):
        cleaned = [redactor(v) if isinstance(v, str) else v for v in row]
        return tuple(cleaned) if isinstance(row, tuple) else cleaned
    return row


def _redact_parameters(redactor: Redactor, parameters: Any, executemany: bool) -> Any:
    if parameters is None:
        return parameters
    if executemany:
        return [_redact_row(redactor, row) for row in parameters]
    return _redact_row(redactor, parameters)
