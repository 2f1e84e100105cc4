"""``--state FILE``: the account (wallet, positions, settings, orders, fills, income, id sequences and the replay
time) written as JSON and read back, so a restarted simulator carries on where it stopped."""

from __future__ import annotations

import dataclasses
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.sim.account import Position
from trader.sim.matching import Exchange
from trader.sim.orders import AlgoOrder, Income, Order, Trade

VERSION = 1


def _dump(obj: Any) -> dict[str, Any]:
    return {f.name: (str(v) if isinstance(v := getattr(obj, f.name), Decimal) else v)
            for f in dataclasses.fields(obj)}


def _load(cls: type, raw: dict[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        v = raw[f.name]
        kwargs[f.name] = Decimal(v) if f.type in ("Decimal", Decimal) else v
    return cls(**kwargs)


def snapshot(ex: Exchange) -> dict[str, Any]:
    a = ex.account
    return {
        "version": VERSION,
        "time_ms": ex.processed_ms,
        "account": {"wallet": str(a.wallet), "dual_side": a.dual_side, "multi_assets": a.multi_assets,
                    "update_time": a.update_time, "in_liquidation": a.in_liquidation,
                    "positions": [_dump(p) for p in a.positions.values()]},
        "leverage": ex.leverage,
        "margin_type": ex.margin_type,
        "orders": [_dump(o) for o in ex.orders.values()],
        "algos": [_dump(o) for o in ex.algos.values()],
        "trades": [_dump(t) for t in ex.trades],
        "income": [_dump(i) for i in ex.income],
        "seq": {"ids": ex._ids.value, "trades": ex._trade_ids.value, "tran": ex._tran_ids.value},
    }


def restore(ex: Exchange, data: dict[str, Any]) -> None:
    """Load a snapshot into a freshly built exchange (same pairs) and move its clock to the saved time."""
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported state version {data.get('version')}")
    acc = data["account"]
    ex.account.wallet = Decimal(acc["wallet"])
    ex.account.dual_side = acc["dual_side"]
    ex.account.multi_assets = acc["multi_assets"]
    ex.account.update_time = acc["update_time"]
    ex.account.in_liquidation = acc["in_liquidation"]
    ex.account.positions = {}
    for raw in acc["positions"]:
        if raw["symbol"] in ex.data:
            ex.account.positions[raw["symbol"]] = _load(Position, raw)
    ex.leverage.update({k: v for k, v in data["leverage"].items() if k in ex.data})
    ex.margin_type.update({k: v for k, v in data["margin_type"].items() if k in ex.data})
    ex.orders = {o.order_id: o for o in (_load(Order, r) for r in data["orders"])}
    ex.algos = {a.algo_id: a for a in (_load(AlgoOrder, r) for r in data["algos"])}
    ex.reindex()
    ex.trades = [_load(Trade, r) for r in data["trades"]]
    ex.income = [_load(Income, r) for r in data["income"]]
    ex._ids.value = data["seq"]["ids"]
    ex._trade_ids.value = data["seq"]["trades"]
    ex._tran_ids.value = data["seq"]["tran"]
    t = int(data["time_ms"])
    ex.clock.set(t)
    ex.processed_ms = t
    ex.seg = {s: (t, d.price(t), d.mark(t)) for s, d in ex.data.items()}


def save(ex: Exchange, path: Path) -> None:
    """Atomic write: a crash mid-save leaves the previous file intact."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(snapshot(ex), indent=1))
    os.replace(tmp, path)


def load(ex: Exchange, path: Path) -> bool:
    """Restore from ``path`` if it exists; False when there is nothing to restore."""
    path = Path(path)
    if not path.exists():
        return False
    restore(ex, json.loads(path.read_text()))
    return True
