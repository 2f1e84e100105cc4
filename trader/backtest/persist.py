"""Storing a finished backtest: one ``BacktestRun`` row and a ``Trade`` row per round trip."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from trader.backtest.broker import TradeRecord
from trader.backtest.runner import BacktestResult
from trader.persistence.database import transaction
from trader.persistence.models import BacktestRun, Trade


def money(x: float, places: int = 8) -> Decimal:
    """Float engine values become exact Decimals at 8 decimals (USDT balance precision) at the database edge."""
    return Decimal(f"{float(x):.{places}f}")


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def trade_row(t: TradeRecord, result: BacktestResult) -> Trade:
    return Trade(
        pair=t.pair,
        side=t.side,
        leverage=result.leverage,
        amount=money(t.qty, 12),
        amount_open=Decimal(0),
        stake=money(t.qty * t.entry_price / result.leverage),
        open_rate=money(t.entry_price, 10),
        close_rate=money(t.exit_price, 10),
        # Binance's convention (userTrades ``realizedPnl``): price P&L only; commissions (the liquidation fee
        # included) and funding have their own columns, so net = realized_pnl − fees + funding.
        fees=money(t.fees + t.liquidation_fee),
        funding=money(t.funding),
        realized_pnl=money(t.realized_pnl),
        status="closed",
        strategy=result.strategy,
        enter_tag="",
        exit_reason=t.exit_reason,
        dry_run=True,
        open_date=_utc(t.open_ms),
        close_date=_utc(t.close_ms),
        backtest_run_id=result.run_id,
    )


def store_backtest(factory: sessionmaker[Session], result: BacktestResult, timerange: str, result_dir: str,
                   summary: dict[str, Any], requested_by: int | None = None) -> None:
    with transaction(factory) as session:
        run = BacktestRun(
            id=result.run_id,
            finished_at=dt.datetime.now(dt.UTC),
            requested_by=requested_by,
            strategy=result.strategy,
            pairs=list(result.pairs),
            timeframe=result.timeframe,
            timerange=timerange,
            leverage=result.leverage,
            params=summary.get("params", {}),
            metrics=summary,
            status="done",
            result_dir=result_dir,
        )
        session.add(run)
        session.flush()
        session.add_all(trade_row(t, result) for t in result.trades)
