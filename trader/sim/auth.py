"""Binance request signing: X-MBX-APIKEY, HMAC-SHA256 over the raw query + body, timestamp and recvWindow."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from trader.sim.errors import BinanceError, err

_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{1,128}$")
MAX_RECV_WINDOW = 60_000


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """Split ``…&signature=<hex>`` off a raw parameter string, keeping the rest byte for byte (the signature was
    computed over exactly those bytes, so nothing may be re-encoded)."""
    m = re.search(r"(^|&)signature=([^&]*)$", raw)
    if not m:
        return raw, None
    return raw[: m.start()], m.group(2)


def check_api_key(headers: Mapping[str, str], keys: Mapping[str, str]) -> str:
    key = headers.get("X-MBX-APIKEY", "")
    if not key or not _KEY_FORMAT.match(key):
        raise err(-2014)
    if key not in keys:
        raise err(-2015)
    return key


def verify(query: str, body: str, headers: Mapping[str, str], keys: Mapping[str, str], params: Mapping[str, str],
           server_ms: int) -> str:
    """Authenticate a SIGNED request; returns the API key. ``server_ms`` is the time the timestamp is judged by."""
    key = check_api_key(headers, keys)
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    signature = sig_b if sig_b is not None else sig_q
    if not signature:
        raise err(-1102, "signature")
    ts_raw = params.get("timestamp")
    if not ts_raw or not str(ts_raw).isdigit():
        raise err(-1102, "timestamp")
    ts = int(ts_raw)
    window_raw = params.get("recvWindow") or "5000"
    try:
        window = int(float(window_raw))
    except ValueError:
        raise err(-1102, "recvWindow") from None
    if window <= 0 or window > MAX_RECV_WINDOW:
        raise err(-1130, "recvWindow")
    if ts >= server_ms + 1000:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - ts > window:
        raise err(-1021)
    # totalParams is the query string followed directly by the body, the signature cut from whichever held it.
    payload = q + b
    expected = hmac.new(keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise err(-1022)
    return key


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
