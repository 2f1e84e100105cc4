"""Pair syntax.

The canonical form is ccxt's unified symbol for a linear perpetual, ``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT``).
People type pairs in many shapes, so ``BTC``, ``btcusdt``, ``BTC/USDT`` and ``BTC/USDT:USDT`` are all accepted.
"""

from __future__ import annotations

import re

# Binance bases are upper-case letters and digits (1000PEPE, 1INCH); nothing else is a valid base.
_BASE = r"[A-Z0-9]{1,20}"
_FULL = re.compile(rf"^(?P<base>{_BASE})/(?P<quote>[A-Z]{{3,6}}):(?P<settle>[A-Z]{{3,6}})$")
_SLASH = re.compile(rf"^(?P<base>{_BASE})/(?P<quote>[A-Z]{{3,6}})$")
_BARE = re.compile(rf"^{_BASE}$")


def normalize_pair(text: str, quote: str = "USDT") -> str:
    """Return the canonical ``BASE/QUOTE:QUOTE`` symbol or raise ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"pair must be text, got {type(text).__name__}")
    raw = text.strip().upper()
    if not raw:
        raise ValueError("pair is empty")
    m = _FULL.match(raw)
    if m:
        if m["quote"] != quote or m["settle"] != quote:
            raise ValueError(f"{text!r} is not a {quote}-margined perpetual (expected BASE/{quote}:{quote})")
        return f"{m['base']}/{quote}:{quote}"
    m = _SLASH.match(raw)
    if m:
        if m["quote"] != quote:
            raise ValueError(f"{text!r} is not quoted in {quote}")
        return f"{m['base']}/{quote}:{quote}"
    if _BARE.match(raw):
        base = raw[: -len(quote)] if raw.endswith(quote) and len(raw) > len(quote) else raw
        return f"{base}/{quote}:{quote}"
    raise ValueError(f"{text!r} is not a pair (use BTC, BTCUSDT, BTC/USDT or BTC/USDT:USDT)")


def exchange_symbol(pair: str) -> str:
    """``BTC/USDT:USDT`` → ``BTCUSDT`` (Binance's own spelling)."""
    base, rest = pair.split("/", 1)
    return base + rest.split(":", 1)[0]


def file_stem(pair: str) -> str:
    """``BTC/USDT:USDT`` → ``BTC_USDT_USDT`` (freqtrade's file naming)."""
    return pair.replace("/", "_").replace(":", "_")
