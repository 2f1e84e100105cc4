"""Funding settlements the exchange booked (income FUNDING_FEE) → FundingPayment rows, each added to the open trade
of its pair, so PnL is net of funding. Run by the account monitor every 30 s and by the ledger check before it
compares the ledger with the exchange's income statement (else a settlement booked since the last poll is a
false mismatch)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from trader.exchange.client import ExchangeClient
from trader.persistence.database import transaction
from trader.persistence.models import FundingPayment, Trade


def store_funding(sessions: sessionmaker[Session], rows: list[dict[str, Any]]) -> int:
    """Store the settlements not stored yet (one per pair and minute); returns how many were added."""
    added = 0
    for row in rows:
        pair = row.get("symbol")
        when = dt.datetime.fromtimestamp(int(row["timestamp"]) / 1000, dt.timezone.utc).replace(second=0,
                                                                                                microsecond=0)
        amount = Decimal(str(row.get("amount") or 0))
        try:
            with transaction(sessions) as session:
                trade = session.scalar(select(Trade).where(Trade.pair == pair, Trade.status == "open",
                                                           Trade.backtest_run_id.is_(None)))
                session.add(FundingPayment(trade_id=trade.id if trade else None, pair=pair,
                                           rate=None, amount=amount, time=when))
                if trade is not None:
                    trade.funding = trade.funding + amount
        except IntegrityError:
            continue  # already stored
        added += 1
    return added


async def sync_funding(client: ExchangeClient, sessions: sessionmaker[Session], since_ms: int | None = None) -> int:
    """Read the account's funding settlements and store the new ones; returns how many were added."""
    rows = await client.fetch_funding_payments(since_ms)
    return await asyncio.to_thread(store_funding, sessions, rows)
