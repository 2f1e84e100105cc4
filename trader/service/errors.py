"""The service's one error type: a code front ends can translate, and a plain message."""

from __future__ import annotations

from typing import Any

CODES = frozenset({
    "invalid_argument",  # the request itself is malformed (unknown pair, leverage out of bounds)
    "refused",  # valid, but the current state forbids it (would breach the liquidation buffer)
    "conflict",  # already in that state, or another action of the kind is running
    "not_running",  # needs the engine running
    "exchange",  # the exchange failed or refused
    "permission",  # the exchange key cannot do this
})


class ServiceError(Exception):
    def __init__(self, code: str, message: str, **details: Any):
        if code not in CODES:
            raise ValueError(f"unknown service error code {code!r}")
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{code}: {message}")
