"""Feeds the metrics that are not observed inside the exchange client.

- ``watch_bus``: fills and engine errors, counted as the engine publishes them (on the publisher's thread; the
  counters are thread-safe).
- ``run_sampler``: every ``SAMPLE_S`` the service is asked for its status, balance and trade performance through its
  proxy (so the reads run on the service's own loop), and the heavy-job runner for its workers. A read that fails
  leaves that figure unset in the sample instead of zero; the sample's timestamp shows how fresh it is.

Cost at the default interval: one position read (weight 5) and one balance read (weight 5) every 15 s, about
40 of the 2400 weight Binance allows per minute, and one query of the closed trades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from trader.events import EngineError, Event, EventBus, OrderFilled
from trader.monitoring.metrics import Metrics, StateSample

log = logging.getLogger(__name__)
SAMPLE_S = 15.0
READ_TIMEOUT_S = 10.0  # a service read that takes longer is skipped for this sample


def watch_bus(bus: EventBus, metrics: Metrics) -> Callable[[], None]:
    """Count fills by purpose and engine errors by place; returns the unsubscribe function."""

    def on_event(event: Event) -> None:
        if isinstance(event, OrderFilled):
            metrics.fills.labels(event.purpose).inc()
        elif isinstance(event, EngineError):
            metrics.engine_errors.labels(event.where or "unknown").inc()

    return bus.subscribe(on_event)


def service_jobs(service: Any) -> Callable[[], Any]:
    """The service's heavy-job runner if it exists. It is created on first use (a host that never backtests never
    sweeps old runs), so it is looked up without creating it: none yet means no worker runs."""
    return lambda: getattr(service, "_backtest_jobs", None)


async def _read(what: str, call: Callable[[], Any]) -> Any:
    try:
        return await asyncio.wait_for(call(), READ_TIMEOUT_S)
    except Exception as exc:  # the exchange or database did not answer: leave the figure out of this sample
        log.warning("metrics: %s not read: %s", what, exc)
        return None


async def sample_state(proxy: Any, heavy_jobs: Callable[[], Any], previous: StateSample | None = None) -> StateSample:
    """One reading through the service proxy (``status``, ``balance``, ``performance``); ``previous`` carries the
    time of the last balance that was read, so a failing exchange shows as an ageing timestamp."""
    status = await _read("status", proxy.status)
    balance = await _read("balance", proxy.balance)
    performance = await _read("performance", proxy.performance)
    now = time.time()
    sample: dict[str, Any] = {"taken_at": now, "account_read_at": previous and previous.account_read_at,
                              "engine_running": bool(status and status.running),
                              "entries_paused": bool(status and status.paused)}
    if status is not None and status.open_positions >= 0:  # -1: the exchange did not answer
        sample["open_positions"] = status.open_positions
    if balance is not None:
        sample["account_read_at"] = now
        sample["wallet"] = float(balance.wallet)
        sample["equity"] = float(balance.margin_balance)
        sample["unrealized_pnl"] = float(balance.unrealized_pnl)
        ratio = balance.margin_ratio
        sample["margin_ratio"] = float(ratio) if ratio is not None else None
    if performance is not None:
        sample["closed_trades"] = sum(p.trades for p in performance)
        sample["won_trades"] = sum(p.wins for p in performance)
        sample["realized_pnl"] = float(sum(p.net_pnl for p in performance))
    jobs = heavy_jobs()
    if jobs is None:
        sample["heavy_jobs"] = {}
    else:
        running = jobs.running()
        sample["heavy_jobs"] = {kind: sum(1 for j in running if j.kind == kind) for kind in ("backtest", "hyperopt")}
        sample["heavy_job_slots"] = jobs.max_jobs
    return StateSample(**sample)


async def run_sampler(metrics: Metrics, proxy: Any, heavy_jobs: Callable[[], Any], stop: asyncio.Event,
                      interval_s: float = SAMPLE_S) -> None:
    """Sample at once, then every ``interval_s`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            metrics.state.sample = await sample_state(proxy, heavy_jobs, metrics.state.sample)
        except Exception:  # metrics must never take the job down
            log.exception("metrics sample failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
