"""Bring the ledger in step with the exchange when no engine is running (after a flatten with the engine stopped,
``bsmart reconcile --fix``, a restart that finds a flatten interrupted).

It is the desk's own start-up procedure (``OrderDesk.load``) on a desk that never trades: open trades are matched
to the exchange's positions and closed from the account's fills (GET /fapi/v1/userTrades), or marked
``exit_unknown`` when no fill explains the difference — one implementation for the engine and for this.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.events import EventBus
from trader.exchange.client import ExchangeClient
from trader.live.desk import OrderDesk
from trader.live.ledger import Ledger
from trader.live.orders import DeskOptions, StopRepair
from trader.persistence.models import Trade

log = logging.getLogger(__name__)


async def sync_ledger(client: ExchangeClient, sessions: sessionmaker[Session], *, pairs: list[str], leverage: int,
                      bus: EventBus | None = None, dry_run: bool = True, run: str = "") -> list[str]:
    """Returns the pairs whose difference no fill explained (their open trade is now ``exit_unknown``)."""
    with sessions() as s:
        open_pairs = set(s.scalars(select(Trade.pair).where(Trade.status == "open",
                                                            Trade.backtest_run_id.is_(None))))
    held = {p.pair for p in await client.fetch_positions()}
    everything = sorted(set(pairs) | open_pairs | held)
    desk = OrderDesk(client, everything, leverage=leverage, ledger=Ledger(sessions, dry_run=dry_run),
                     bus=bus or EventBus(), options=DeskOptions(run=run))
    await desk.load()
    await desk.retry_catch_up()
    await desk.drain()
    desk.ledger.flush()
    return list(desk.unexplained_pairs)


async def protect_positions(client: ExchangeClient, sessions: sessionmaker[Session], *, pairs: list[str],
                            leverage: int, bus: EventBus | None = None, dry_run: bool = True,
                            run: str = "") -> list[StopRepair]:
    """With no engine running (it did not start, or a user stopped it): the ledger in step and a stop on every
    exchange position that has none — the same start-up procedure the engine runs before it trades."""
    held = {p.pair for p in await client.fetch_positions(protective=True)}
    everything = sorted(set(pairs) | held)
    desk = OrderDesk(client, everything, leverage=leverage, ledger=Ledger(sessions, dry_run=dry_run),
                     bus=bus or EventBus(), options=DeskOptions(run=run))
    await desk.load()
    repairs = await desk.reconcile_stops()
    await desk.retry_catch_up()  # after the stops: a rate-limited start must not leave the ledger behind
    await desk.drain()
    desk.ledger.flush()
    return repairs
