"""Backtest runs started by jobs: the ``BacktestRun`` row's life (running → done | failed | cancelled) and
reading a finished run back from its export for summaries and charts.

The CLI stores a run in one go (``trader.backtest.persist.store_backtest``); a job's row exists from the start so
a cancelled or crashed run is listed too. Trades are written with the same ``trade_row`` as the CLI.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.backtest.persist import trade_row
from trader.backtest.runner import BacktestResult
from trader.performance.metrics import Metrics
from trader.persistence.database import transaction
from trader.persistence.models import BacktestRun

INTERRUPTED = "interrupted: the process running it stopped"


@dataclass(frozen=True)
class RunView:
    id: str
    status: str  # running | done | failed | cancelled
    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    timerange: str
    leverage: int
    requested_by: int | None
    created_at: dt.datetime  # UTC
    finished_at: dt.datetime | None
    error: str
    result_dir: str
    total_return: float | None
    trades: int | None


@dataclass(frozen=True)
class StoredTrade:
    """A round trip read back from ``trades.csv``; the attributes the report code reads of a ``TradeRecord``."""

    pair: str
    side: str
    open_ms: int
    close_ms: int
    qty: float
    entry_price: float
    exit_price: float
    realized_pnl: float
    fees: float
    funding: float
    liquidation_fee: float
    net_pnl: float
    return_on_equity: float
    exit_reason: str
    liquidated: bool
    fills: int


@dataclass(frozen=True)
class StoredResult:
    """A finished run read back from its export, shaped like ``BacktestResult`` for ``reports``."""

    run_id: str
    strategy: str
    pairs: list[str]
    timeframe: str
    leverage: int
    initial_wallet: float
    final_wallet: float
    start_ms: int
    end_ms: int
    bars: int
    trades: list[StoredTrade]
    equity_ms: np.ndarray
    equity: np.ndarray
    metrics: Metrics
    assumptions: list[str]
    elapsed_s: float


@dataclass(frozen=True)
class StoredRun:
    run: RunView
    result: StoredResult | None  # None while running, after a failure or when the export was removed


def _view(row: BacktestRun) -> RunView:
    metrics = (row.metrics or {}).get("metrics") or {}
    return RunView(row.id, row.status, row.strategy, tuple(row.pairs or ()), row.timeframe, row.timerange,
                   row.leverage, row.requested_by, row.created_at, row.finished_at, row.error or "",
                   row.result_dir or "", metrics.get("total_return"), metrics.get("trades"))


def create_running(factory: sessionmaker[Session], run_id: str, *, strategy: str, pairs: list[str], timeframe: str,
                   timerange: str, leverage: int, params: dict[str, Any], requested_by: int | None) -> None:
    with transaction(factory) as session:
        session.add(BacktestRun(id=run_id, requested_by=requested_by, strategy=strategy, pairs=list(pairs),
                                timeframe=timeframe, timerange=timerange, leverage=leverage, params=params,
                                metrics={}, status="running"))


def finish_done(factory: sessionmaker[Session], result: BacktestResult, summary: dict[str, Any],
                result_dir: str) -> None:
    with transaction(factory) as session:
        row = session.get(BacktestRun, result.run_id)
        if row is None:
            raise LookupError(f"backtest run {result.run_id} is not stored")
        row.status = "done"
        row.finished_at = dt.datetime.now(dt.UTC)
        row.strategy = result.strategy
        row.params = summary.get("params", {})
        row.metrics = summary
        row.result_dir = result_dir
        session.add_all(trade_row(t, result) for t in result.trades)


def finish_other(factory: sessionmaker[Session], run_id: str, status: str, error: str = "") -> None:
    if status not in ("failed", "cancelled"):
        raise ValueError(f"not a final status without a result: {status!r}")
    with transaction(factory) as session:
        row = session.get(BacktestRun, run_id)
        if row is not None and row.status == "running":
            row.status = status
            row.error = error[:2000]
            row.finished_at = dt.datetime.now(dt.UTC)


def mark_interrupted(factory: sessionmaker[Session]) -> int:
    """Rows left "running" by a process that died with its workers; returns how many were closed."""
    with transaction(factory) as session:
        rows = session.scalars(select(BacktestRun).where(BacktestRun.status == "running")).all()
        for row in rows:
            row.status = "failed"
            row.error = INTERRUPTED
            row.finished_at = dt.datetime.now(dt.UTC)
        return len(rows)


def recent_runs(factory: sessionmaker[Session], limit: int = 10) -> list[RunView]:
    with factory() as session:
        rows = session.scalars(select(BacktestRun).order_by(BacktestRun.created_at.desc(), BacktestRun.id.desc())
                               .limit(limit)).all()
        return [_view(r) for r in rows]


def find_run(factory: sessionmaker[Session], text: str) -> RunView | None:
    """By full id, or by a unique ending of at least 6 characters (the lists show the last 12)."""
    text = text.strip()
    with factory() as session:
        row = session.get(BacktestRun, text)
        if row is None and len(text) >= 6:
            found = session.scalars(select(BacktestRun).where(BacktestRun.id.endswith(text, autoescape=True))
                                    .limit(2)).all()
            row = found[0] if len(found) == 1 else None
        return _view(row) if row is not None else None


def _float(text: str) -> float:
    return float(text) if text not in ("", "None") else math.nan


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _metrics(data: dict[str, Any]) -> Metrics:
    known = {f.name for f in fields(Metrics)}
    # JSON holds None where the engine had inf/NaN (export._clean); Metrics wants floats back.
    values = {k: (math.nan if v is None and k != "max_drawdown_recovery_days" else v)
              for k, v in data.items() if k in known}
    return Metrics(**values)


def load_result(result_dir: str | Path) -> StoredResult | None:
    """The export ``trader.backtest.export.write_export`` wrote, or None when it is gone or incomplete."""
    out = Path(result_dir)
    try:
        summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
        with (out / "trades.csv").open(newline="") as fh:
            trades = [StoredTrade(
                pair=r["pair"], side=r["side"], open_ms=_ms(r["open_time"]), close_ms=_ms(r["close_time"]),
                qty=_float(r["qty"]), entry_price=_float(r["entry_price"]), exit_price=_float(r["exit_price"]),
                realized_pnl=_float(r["realized_pnl"]), fees=_float(r["fees"]), funding=_float(r["funding"]),
                liquidation_fee=_float(r["liquidation_fee"]), net_pnl=_float(r["net_pnl"]),
                return_on_equity=_float(r["return_on_equity"]), exit_reason=r["exit_reason"],
                liquidated=r["liquidated"] == "1", fills=int(r["fills"] or 0)) for r in csv.DictReader(fh)]
        times: list[int] = []
        values: list[float] = []
        with (out / "equity.csv").open(newline="") as fh:
            for r in csv.DictReader(fh):
                times.append(_ms(r["time"]))
                values.append(float(r["equity"]))
        return StoredResult(
            run_id=summary["run_id"], strategy=summary["strategy"], pairs=list(summary["pairs"]),
            timeframe=summary["timeframe"], leverage=int(summary["leverage"]),
            initial_wallet=float(summary["initial_wallet"]), final_wallet=float(summary["final_wallet"]),
            start_ms=_ms(summary["start"]), end_ms=_ms(summary["end"]), bars=int(summary["bars"]), trades=trades,
            equity_ms=np.asarray(times, dtype="int64"), equity=np.asarray(values, dtype="float64"),
            metrics=_metrics(summary["metrics"]), assumptions=list(summary.get("assumptions", [])),
            elapsed_s=float(summary.get("elapsed_s", 0.0)))
    except (OSError, KeyError, ValueError, TypeError):
        return None
