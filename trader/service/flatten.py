"""Flatten: the emergency exit. Cancel every open order, close every position on the exchange, verify, report.

It works from the exchange's view of the account, not the database's, so positions the bot never opened are
closed too, and it needs no running engine. Closes are reduce-only market orders (they can never open or flip a
position) with deterministic client ids per run and round, so a retry after an unknown outcome is resolved by
lookup, never sent twice. Positions larger than the exchange's market-order maximum are closed in slices.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from decimal import Decimal

from trader.exchange.client import ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderRequest, OrderState, Position
from trader.exchange.order_ids import client_order_id
from trader.model.money import realized_pnl
from trader.service.views import FlattenFill, FlattenReport, Leftover

log = logging.getLogger(__name__)

ROUNDS = 3  # close → verify rounds before leftovers are reported


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _slices(client: ExchangeClient, pair: str, amount: Decimal) -> list[Decimal]:
    market = client.market(pair)
    cap = (market.get("limits", {}).get("market", {}) or {}).get("max")
    if not cap:
        return [amount]
    cap_dec = Decimal(str(cap))
    out = []
    left = amount
    while left > 0:
        part = min(left, cap_dec)
        out.append(part)
        left -= part
    return out


async def _cancel_everything(client: ExchangeClient, report: FlattenReport) -> None:
    try:
        orders = await client.fetch_open_orders(None)
    except ExchangeError as exc:
        report.errors.append(f"open orders could not be listed: {exc}")
        orders = []
    for pair in sorted({o.pair for o in orders}):
        try:
            await client.cancel_all(pair)
            report.cancelled_orders += sum(1 for o in orders if o.pair == pair)
        except ExchangeError as exc:
            report.errors.append(f"{pair}: cancel failed: {exc}")


async def _close(client: ExchangeClient, run: str, seq: int, rnd: int, position: Position) -> list[OrderState]:
    side = "sell" if position.contracts > 0 else "buy"
    amount = client.amount_to_precision(position.pair, abs(position.contracts))
    states = []
    for k, part in enumerate(_slices(client, position.pair, amount)):
        request = OrderRequest(position.pair, side, "market", client_order_id(seq, "flat", rnd * 100 + k, run=run),
                               amount=part, reduce_only=True)
        try:
            states.append(await client.create_order(request))
        except ExchangeError as exc:
            if not (exc.info.state_unknown or exc.info.retryable):
                raise
            found = await client.find_order(request)
            if found is None:
                raise
            states.append(found)
    return states


async def flatten_account(client: ExchangeClient, run: str) -> FlattenReport:
    """Close everything on the exchange account behind ``client``. ``run`` makes this run's client ids unique."""
    report = FlattenReport(started=_utcnow())
    await _cancel_everything(client, report)
    fills: dict[str, list[OrderState]] = {}
    entries: dict[str, Position] = {}
    positions: list[Position] | None = None
    for rnd in range(ROUNDS + 1):
        try:
            positions = await client.fetch_positions(protective=True)
        except ExchangeError as exc:
            report.errors.append(f"positions could not be read: {exc}")
            positions = None
            await asyncio.sleep(0.2 * (rnd + 1))
            continue
        if not positions or rnd == ROUNDS:
            break  # flat, or the last read after the last round of closes
        results = await asyncio.gather(
            *(_close(client, run, i, rnd, p) for i, p in enumerate(positions)), return_exceptions=True
        )
        for position, result in zip(positions, results, strict=True):
            entries.setdefault(position.pair, position)
            if isinstance(result, BaseException):
                report.errors.append(f"{position.pair}: close failed: {result}")
                log.error("flatten: closing %s failed: %s", position.pair, result)
            else:
                fills.setdefault(position.pair, []).extend(result)
    if positions is None:
        report.errors.append("the account could not be read after closing: flat is not verified")
    else:
        report.verified = True
        report.leftovers = [Leftover(p.pair, p.contracts, f"still open after {ROUNDS} rounds") for p in positions]
        if positions:
            # Orders placed by a racing strategy or by hand after our cancel would hold margin; cancel once more.
            await _cancel_everything(client, report)
    for pair, states in sorted(fills.items()):
        origin = entries[pair]
        filled = sum((s.filled for s in states), Decimal(0))
        cost = sum((s.filled * (s.average or Decimal(0)) for s in states), Decimal(0))
        average = (cost / filled) if filled else None
        pnl = None
        if average is not None and origin.entry_price:
            pnl = realized_pnl(filled, origin.entry_price, average, 1 if origin.contracts > 0 else -1)
        report.closed.append(FlattenFill(pair, origin.side, filled, average,
                                         tuple(s.client_order_id for s in states), pnl))
    report.finished = _utcnow()
    return report
