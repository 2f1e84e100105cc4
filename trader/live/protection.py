"""The order desk's protection: every position carries an exchange-side stop.

After an entry fill the stop goes out first, then the targets; a stop that cannot be placed closes the position at
market; a stop is replaced by placing the new one before the old goes; any exchange position found without a stop
(start-up, reconnects, a fill from elsewhere) gets the trade's stop, or entry ∓ ``fallback_stop``/leverage.
Part of ``OrderDesk`` (trader.live.desk), which holds the state these methods use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from decimal import Decimal
from typing import Literal

from trader.events import RiskAction, StopMoved
from trader.exchange.client import not_sent
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderState, Position
from trader.live.orders import OrderSpec, StopRepair, Tracked

log = logging.getLogger("trader.live.desk")


class Protection:
    """Stops and targets for every position (see the module docstring)."""

    async def _protect(self, entry: Tracked) -> None:
        """Place the entry's children: the stop first, then the targets."""
        if entry.protected:
            return
        entry.protected = True
        kids = sorted(entry.children, key=lambda c: c.spec.purpose != "stop")
        for child in kids:
            if child.cid:
                continue  # placed already: a sliced entry's stop goes out with its first fill
            if child.cancel_requested or not child.live:
                if child.live:
                    self._finish(child, "canceled", "cancelled before it was sent")
                continue
            if self.positions[child.pair][0] == 0:
                self._finish(child, "canceled", "position already flat")
                continue
            ok = await self._place_protective(child, entry.trade_id or 0)
            if not ok and child.spec.purpose == "stop":
                await self._unprotected(child.pair, f"stop for trade {entry.trade_id} could not be placed")
                for other in kids:
                    if other.live and other is not child:
                        self._finish(other, "canceled", "position closed: no stop")
                return

    async def _send_protective(self, t: Tracked) -> None:
        """A stop or target submitted on its own (a stop moved, a target added to an open position)."""
        if self.positions[t.pair][0] == 0:
            self._finish(t, "canceled", "no position to protect")
            return
        if await self._place_protective(t, self._trade_for(t)) or t.spec.purpose != "stop":
            return
        # The replacement failed: the stops it was to replace stay, and if there are none the position goes.
        kept = [o for o in self._by_cid.values() if o.pair == t.pair and o.cancel_when_replaced and o.live]
        for o in kept:
            o.cancel_when_replaced = False
        if not kept and not self._other_stop(t):
            await self._unprotected(t.pair, f"{t.pair}: replacement stop rejected and no other stop is live")

    async def _place_protective(self, t: Tracked, trade_id: int) -> bool:
        for attempt in range(1, self.options.protect_attempts + 1):
            req = self._build(t, trade_id) if attempt == 1 else t.request
            assert req is not None
            try:
                state = await self.client.create_order(req)
            except ExchangeError as exc:
                if exc.info.code == -2021 and t.spec.kind == "take_profit" and t.spec.amount:
                    return await self._target_passed(t, trade_id)
                if not_sent(exc) and not exc.info.retryable:
                    # Refused by rate limiting and certainly not placed: no lookup; the caller closes the position.
                    self.ledger.update_order(t.cid, status="rejected")
                    self._finish(t, "rejected", str(exc.info.message))
                    return False
                if exc.info.code == -2021 or not (exc.info.retryable or exc.info.state_unknown):
                    # -2021: the price is already through the trigger; retrying cannot help.
                    self.ledger.update_order(t.cid, status="rejected")
                    self._finish(t, "rejected", f"{exc.info.code}: {exc.info.message}")
                    return False
                with contextlib.suppress(ExchangeError):
                    found = await self.client.find_order(req)
                    if found is not None:
                        state = found
                        break
                await asyncio.sleep(min(0.05 * attempt, 0.5))
                continue
            break
        else:
            self._finish(t, "rejected", "protective order not placed after retries")
            return False
        t.exchange_id = state.id
        t.status = "open" if t.status == "pending" else t.status
        self._publish_placed(t)
        self._apply(t, state)
        if t.spec.purpose == "stop":
            book = self.trades.get(t.pair)
            if book is not None:
                old = book.stop_price
                book.stop_price = t.spec.price
                if book.id:
                    self.ledger.update_trade(book.id, stop_price=t.spec.price)
                if old is not None and old != t.spec.price:
                    self.bus.publish(StopMoved(pair=t.pair, trade_id=book.id, old_price=old, new_price=t.spec.price))
            await self._replaced(t)
        return True

    async def _target_passed(self, t: Tracked, trade_id: int) -> bool:
        """The price is already beyond the target (it gapped through while the entry filled): take the profit now
        with a reduce-only market order, as the backtest fills a target the open has passed."""
        self.ledger.update_order(t.cid, status="rejected")
        self._by_cid.pop(t.cid, None)
        t.spec = dataclasses.replace(t.spec, kind="market", price=None)
        state = await self._create(t, self._build(t, trade_id))
        if state is None:
            return False
        self._publish_placed(t)
        self._apply(t, state)
        return True

    async def _replaced(self, new_stop: Tracked) -> None:
        """A new stop is live: now the stops it replaces may go."""
        if new_stop.status != "open":
            return
        for old in [o for o in self._by_cid.values() if o.pair == new_stop.pair and o is not new_stop
                    and o.cancel_when_replaced and o.live]:
            await self._cancel(old, force=True)

    async def _unprotected(self, pair: str, why: str) -> None:
        self._error(why, "protect")
        if not self.options.close_unprotected:
            return
        size = self.positions[pair][0]
        if size == 0:
            return
        self.bus.publish(RiskAction(action="emergency_close", reason=why, pair=pair))
        spec = OrderSpec(-1, pair, "sell" if size > 0 else "buy", "market", abs(size), None, True, False, "exit",
                         "unprotected")
        t = Tracked(spec, protected=True)
        book = self.trades.get(pair)
        req = self._build(t, (book.id or 0) if book is not None else 0)
        state = await self._create(t, req)
        if state is not None:
            self._publish_placed(t)
            self._apply(t, state)

    def _has_stop(self, pair: str) -> bool:
        return any(o.pair == pair and o.spec.purpose == "stop" and o.live for o in self._by_cid.values()) or any(
            o.pair == pair and o.spec.purpose == "stop" and o.live for o in self._by_ref.values())

    async def _ensure_stop(self, pair: str) -> None:
        """Runs under ``pair``'s lock and touches no other pair (two pairs' safety nets must not wait on each
        other)."""
        if self._has_stop(pair):
            return
        for p in await self.client.fetch_positions([pair], protective=True):
            if p.pair == pair and p.contracts != 0:
                r = await self._repair_if_missing(p)
                if r is not None:
                    log.warning("%s: safety-net stop %s at %s %s", r.pair, r.action, r.price, r.detail)

    async def _after_flat(self, pair: str) -> None:
        """Flat: the targets and stops left on the exchange have nothing to protect."""
        if self.positions[pair][0] != 0:
            return
        for t in [t for t in self._by_cid.values() if t.pair == pair and t.live and not t.spec.is_entry]:
            await self._cancel(t, force=True)
        for t in [t for t in self._by_ref.values() if t.pair == pair and t.live and not t.cid
                  and not t.spec.is_entry]:
            self._finish(t, "canceled", "position flat")

    async def reconcile_stops(self) -> list[StopRepair]:
        """Place a stop for every open position on the exchange that has none (ours or not).

        The stop price is the trade's recorded stop when it still lies on the protective side of the mark, else
        entry ∓ ``fallback_stop``/leverage; a position already beyond that level is closed at market.
        """
        repairs: list[StopRepair] = []
        for p in await self.client.fetch_positions(self.pairs, protective=True):
            if p.contracts == 0:
                continue
            # Under the pair's lock, and the open orders read only then: an entry whose stop is on its way
            # finishes first, and its stop is seen instead of being doubled.
            async with self._locks[p.pair]:
                repair = await self._repair_if_missing(p)
            if repair is not None:
                repairs.append(repair)
        return repairs

    async def _repair_if_missing(self, p: Position) -> StopRepair | None:
        current = {q.pair: q for q in await self.client.fetch_positions([p.pair], protective=True)}.get(p.pair)
        if current is None or current.contracts == 0:
            return None
        closing_side: Literal["buy", "sell"] = "sell" if current.contracts > 0 else "buy"
        opens = await self.client.fetch_open_orders(p.pair)
        if any(o.is_algo and o.side == closing_side and _is_stop(o) for o in opens):
            return None
        return await self._repair(current, closing_side)

    async def _repair(self, p: Position, closing_side: Literal["buy", "sell"]) -> StopRepair:
        spec = self.spec(p.pair)
        mark = p.mark_price or p.entry_price
        long = p.contracts > 0
        book = self.trades.get(p.pair)
        known = book.stop_price if book is not None else None
        fallback = p.entry_price * (1 - Decimal(str(self.options.fallback_stop / self.leverage)) * (1 if long else -1))
        price = known if known is not None and ((known < mark) if long else (known > mark)) else fallback
        price = Decimal(str(spec.round_price(float(price))))
        if (price >= mark) if long else (price <= mark):
            await self._unprotected(p.pair, f"{p.pair}: no stop and the price is already through {price}")
            return StopRepair(p.pair, "closed", price, "price beyond the stop level")
        trade_id = book.id if book is not None and book.id else 0
        t = Tracked(OrderSpec(-1, p.pair, closing_side, "stop", None, price, False, True, "stop", "stop_repair"),
                    protected=True)
        ok = await self._place_protective(t, trade_id)
        if ok:
            self.bus.publish(RiskAction(action="stop_replaced", reason=f"missing stop re-placed at {price}",
                                        pair=p.pair))
            return StopRepair(p.pair, "placed", price)
        await self._unprotected(p.pair, f"{p.pair}: missing stop could not be placed")
        return StopRepair(p.pair, "failed", price, "stop rejected; position closed" if self.options.close_unprotected
                          else "stop rejected")


def _is_stop(o: OrderState) -> bool:
    kind = str(o.raw.get("orderType") or o.raw.get("type") or o.raw.get("o") or "").upper()
    if kind:
        return kind in ("STOP_MARKET", "STOP", "TRAILING_STOP_MARKET")
    return "-stop-" in o.client_order_id
