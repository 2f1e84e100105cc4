"""Deterministic client order ids.

Binance accepts ``^[.A-Z:/a-z0-9_-]{1,36}$`` and rejects a duplicate among open orders (−4116). The id is built
from what the order *is* (trade, purpose, sequence), so a retry after a timeout produces the same id and is
either rejected as a duplicate or found by a query: never a second order.
"""

from __future__ import annotations

import re

PATTERN = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
PREFIX = "bsm"
PURPOSES = ("entry", "exit", "stop", "tp1", "tp2", "tp3", "trail", "flat", "force")


def client_order_id(trade_id: int, purpose: str, seq: int = 0, *, run: str = "") -> str:
    """``bsm-<run>-<trade>-<purpose>-<seq>``; ``run`` separates databases that share one account (dry-run vs live)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown order purpose {purpose!r}")
    if trade_id < 0 or seq < 0:
        raise ValueError("trade id and sequence must be non-negative")
    parts = [PREFIX, run, str(trade_id), purpose, str(seq)] if run else [PREFIX, str(trade_id), purpose, str(seq)]
    cid = "-".join(parts)
    if not PATTERN.match(cid):
        raise ValueError(f"client order id {cid!r} does not fit Binance's pattern")
    return cid


def is_ours(cid: str | None) -> bool:
    return bool(cid) and cid.startswith(PREFIX + "-")
