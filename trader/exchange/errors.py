"""Exchange errors, classified in one place from Binance's error code and the HTTP status.

The seed's four classes decide what the engine does next:
- TEMPORARY: retry a few times with exponential backoff and jitter (network, 5xx, throttling, clock skew);
- PARAMETER: the request itself is wrong; log it, alert, never retry;
- PERMISSION: the key cannot do this; alert and halt trading;
- ACCOUNT: margin or position limits; alert, the engine adapts (smaller size, no entry).
Orthogonal to the class, ``state_unknown`` marks answers after which a write may or may not have happened
(a timeout, "unknown error", −1007): such an order is resolved by querying its client id, never by resending.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

import ccxt


class ErrorClass(enum.Enum):
    TEMPORARY = "temporary"
    PARAMETER = "parameter"
    PERMISSION = "permission"
    ACCOUNT = "account"


# Binance codes by class (binance-futures.md §8.3 and Binance's error-code page).
_TEMPORARY = {-1000, -1001, -1003, -1004, -1006, -1007, -1008, -1021}
_PERMISSION = {-1002, -1022, -1125, -2014, -2015, -2008}
_ACCOUNT = {-2018, -2019, -2024, -2027, -2028, -4046, -4047, -4048, -4059, -4067, -4068, -4161}
_STATE_UNKNOWN = {-1000, -1006, -1007}
_NOT_FOUND = {-2011, -2013}
# Codes meaning "already as requested": idempotent setters count them as success.
NO_CHANGE_NEEDED = {-4046, -4059, -4171}
DUPLICATE_CLIENT_ID = {-4116, -20132}


@dataclass(frozen=True)
class Classified:
    error_class: ErrorClass
    code: int | None
    http_status: int | None
    message: str
    state_unknown: bool = False
    not_found: bool = False
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        return self.error_class is ErrorClass.TEMPORARY


class ExchangeError(Exception):
    """The one error type the exchange client raises. ``info`` says what kind and what to do."""

    def __init__(self, info: Classified, operation: str = ""):
        self.info = info
        self.operation = operation
        where = f"{operation}: " if operation else ""
        code = f" [{info.code}]" if info.code is not None else ""
        super().__init__(f"{where}{info.error_class.value} error{code}: {info.message}")

    @property
    def error_class(self) -> ErrorClass:
        return self.info.error_class


_BODY = re.compile(r"\{.*\}", re.S)


def parse_body(text: str) -> tuple[int | None, str]:
    """Extract Binance's ``{"code": -2019, "msg": "..."}`` from a response body or a ccxt message."""
    match = _BODY.search(text or "")
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "code" in data:
            try:
                return int(data["code"]), str(data.get("msg", ""))
            except (TypeError, ValueError):
                pass
    return None, (text or "").strip()


def classify_code(code: int | None, http_status: int | None, message: str = "", retry_after_s: float | None = None) -> Classified:
    """Classify from Binance's code first, then from the HTTP status."""
    not_found = code in _NOT_FOUND
    unknown = code in _STATE_UNKNOWN
    if code is not None and code in _PERMISSION:
        cls = ErrorClass.PERMISSION
    elif code is not None and code in _ACCOUNT:
        cls = ErrorClass.ACCOUNT
    elif code is not None and code in _TEMPORARY:
        cls = ErrorClass.TEMPORARY
    elif http_status in (418, 429, 408) or (http_status is not None and http_status >= 500):
        cls = ErrorClass.TEMPORARY
        # A 5xx or 408 on a write: Binance may have executed it ("execution status unknown").
        unknown = unknown or http_status == 408 or (http_status is not None and http_status >= 500 and code != -1008)
    elif http_status in (401, 403) and code is None:
        cls = ErrorClass.PERMISSION
    else:
        cls = ErrorClass.PARAMETER
    return Classified(cls, code, http_status, message, unknown, not_found, retry_after_s)


def classify_exception(exc: BaseException) -> Classified:
    """Classify anything the ccxt layer raises. Attributes set by our ccxt subclass come first."""
    code = getattr(exc, "binance_code", None)
    status = getattr(exc, "http_status", None)
    retry_after = getattr(exc, "retry_after_s", None)
    message = str(exc)
    parsed_code, parsed = parse_body(message)
    if parsed_code is not None:
        message = parsed
    if code is None:
        code = parsed_code
    if code is not None or status is not None:
        return classify_code(code, status, message, retry_after)
    # No HTTP answer at all: the connection failed or timed out.
    if isinstance(exc, ccxt.RequestTimeout):
        return Classified(ErrorClass.TEMPORARY, None, None, message, state_unknown=True)
    if isinstance(exc, ccxt.NetworkError | TimeoutError | ConnectionError | OSError):
        # A connection refused before sending cannot have executed; a reset mid-request could have.
        return Classified(ErrorClass.TEMPORARY, None, None, message, state_unknown=True)
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return Classified(ErrorClass.PERMISSION, None, None, message)
    if isinstance(exc, ccxt.InsufficientFunds):
        return Classified(ErrorClass.ACCOUNT, None, None, message)
    if isinstance(exc, ccxt.OrderNotFound):
        return Classified(ErrorClass.PARAMETER, None, None, message, not_found=True)
    return Classified(ErrorClass.PARAMETER, None, None, message)
