"""Shared pieces of the standing drills (issue 11): the main job in-process, a five-pair market, the invariant counts.

Every drill ends with the same questions, answered from the exchange's own records and the ledger:
trades left open when flat, invented exit prices (close_rate 0/None on a closed trade), ledger mismatches by kind
(``check_ledger``), duplicate orders (two exchange orders under one client id, or more orders than intended).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.main_job import run_main_job
from trader.config.loader import load_settings
from trader.data.store import bundled_data_dir
from trader.persistence.audit import Actor
from trader.persistence.models import Trade

ADMIN = Actor("cli", None, "admin")
BUNDLED = ("BTC", "ETH", "SOL")
# Two more contracts replaying the bundled candles under other names, so a drill can hold five positions at once.
EXTRA = {"XRP": "SOL", "ADA": "ETH"}
PAIRS5 = [f"{b}/USDT:USDT" for b in (*BUNDLED, *EXTRA)]


def five_pair_data(root: Path) -> Path:
    """A data directory with BTC, ETH, SOL and two synthetic contracts (XRP, ADA) made of symlinked candles."""
    out = root / "market"
    if out.exists():
        return out
    out.mkdir(parents=True)
    src = bundled_data_dir()
    for f in src.iterdir():
        os.symlink(f, out / f.name)
    for name, base in EXTRA.items():
        for f in src.glob(f"{base}_USDT_USDT-*"):
            os.symlink(f, out / f.name.replace(f"{base}_", f"{name}_", 1))
    return out


def drill_config(root: Path, speed: float, *, pairs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A dry-run configuration for one drill round in ``root`` (its own database and user data)."""
    pairs = pairs or PAIRS5
    cfg: dict[str, Any] = {
        "metrics": {"enabled": False}, "user_data_dir": str(root / "ud"), "pair_whitelist": pairs,
        "max_open_trades": len(pairs), "log_level": "WARNING", "simulator": {"speed": speed, "data_dir": str(five_pair_data(root.parent))},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def write_config(root: Path, cfg: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def settings_for(root: Path, cfg: dict[str, Any]):
    return load_settings(write_config(root, cfg), environ={})


async def run_once(settings, action: Callable[[Any], Awaitable[Any]], *, timeout: float = 300.0,
                   heartbeat_s: float = 0.1) -> Any:
    """Start the main job (embedded simulator or the configured exchange), run ``action(runtime)`` once it is ready,
    stop cleanly; an exception inside ``action`` is raised after the shutdown."""
    stop = asyncio.Event()
    results: list[Any] = []

    def on_ready(runtime, info) -> None:
        async def go() -> None:
            try:
                results.append(await asyncio.wait_for(action(runtime), timeout))
            except BaseException as exc:  # noqa: BLE001 - surfaced below, after a clean shutdown
                results.append(exc)
            finally:
                stop.set()

        asyncio.ensure_future(go())

    code = await run_main_job(settings, stop, heartbeat_s=heartbeat_s, on_ready=on_ready)
    if not results:
        raise RuntimeError(f"the main job exited with {code} before it was ready")
    if isinstance(results[0], BaseException):
        raise results[0]
    return results[0]


async def on_host(runtime, fn: Callable[[], Any]) -> Any:
    """``fn()`` on the engine host's loop (where the embedded simulator lives)."""
    async def call() -> Any:
        return fn()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), runtime.host.loop))


def trades(runtime) -> list[Trade]:
    with runtime.core.sessions() as s:
        rows = list(s.scalars(select(Trade).where(Trade.backtest_run_id.is_(None)).order_by(Trade.id)))
        s.expunge_all()
    return rows


def ledger_counts(rows: list[Trade], flat: bool) -> dict[str, int]:
    return {
        "trades_open_when_flat": sum(1 for t in rows if t.status == "open") if flat else 0,
        "invented_exit_prices": sum(1 for t in rows if t.status == "closed"
                                    and (t.close_rate is None or t.close_rate <= 0)),
        "exits_unknown": sum(1 for t in rows if t.status == "exit_unknown"),
        "positions_closed": sum(1 for t in rows if t.status in ("closed", "exit_unknown")),
    }


def mismatch_kinds(report) -> dict[str, int]:
    """check_ledger's findings by kind ("exit_unknown" is counted separately: it is the honest answer when no fill
    explains an exit, not an invented number)."""
    kinds = Counter(m.kind for m in report.mismatches)
    if report.errors:
        kinds["read_errors"] += len(report.errors)
    return dict(kinds)


def is_entry(cid: str, reduce_only: bool) -> bool:
    """An entry order of ours: the strategy's (``-entry-``) or a person's forced one (``-force-``, not reduce-only;
    a forced exit shares the purpose and is reduce-only)."""
    return "-entry-" in cid or ("-force-" in cid and not reduce_only)


def order_counts(orders: list[tuple[str, str, bool]], algos: list[str]) -> dict[str, int]:
    """``orders``: (client id, symbol, reduce-only) of every exchange order; ``algos``: every conditional's client
    id. Duplicates: the same client id on two exchange orders (or two conditionals); duplicate entries: two entry
    orders for one trade (``bsm[-run]-<trade>-…``)."""
    by_cid = Counter(cid for cid, _, _ in orders)
    by_algo = Counter(algos)
    entries = Counter(cid.rsplit("-", 2)[0] for cid, _, ro in orders if is_entry(cid, ro))
    return {
        "exchange_orders": len(orders),
        "duplicate_client_ids": sum(n - 1 for n in by_cid.values() if n > 1)
        + sum(n - 1 for n in by_algo.values() if n > 1),
        "duplicate_entries": sum(n - 1 for n in entries.values() if n > 1),
    }


def sim_orders(sim) -> tuple[list[tuple[str, str, bool]], list[str], list[dict[str, Any]]]:
    """Every order and conditional the (in-process) simulator holds, and its positions. Call on the sim's loop."""
    ex = sim.exchange
    # A triggered conditional's market order carries the conditional's client id: counted once, as the conditional.
    algo_orders = {a.actual_order_id for a in ex.algos.values() if getattr(a, "actual_order_id", None)}
    orders = [(o.client_id, o.symbol, bool(o.reduce_only)) for o in ex.orders.values()
              if o.order_id not in algo_orders]
    algos = [a.client_algo_id for a in ex.algos.values()]
    return orders, algos, sim.state()["positions"]


def add(total: Counter, counts: dict[str, Any]) -> None:
    for k, v in counts.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            total[k] += v
