"""The order desk's account sync: the ledger and the position mirror kept in step with the exchange.

At start the mirror begins from the ledger's open trades and every difference from the exchange is explained by
the account's own fills (GET /fapi/v1/userTrades), applied once per exchange order by cumulative quantity; the
same happens after a stream drop or when the periodic check finds a difference. What no fill explains is followed
with the exit marked unknown (``exit_unknown``), never booked at an invented price. Fills of orders the desk did
not send (flatten, liquidation, manual) reach the ledger with an order row of their own.
Part of ``OrderDesk`` (trader.live.desk), which holds the state these methods use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from trader.events import OrderFilled, RiskAction
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderState, Position, UserTrade
from trader.live.ledger import utc_from_ms
from trader.live.orders import PROTECTIVE, ZERO, FillNote, Kind, OrderSpec, Tracked, TradeBook, WalletNote
from trader.live.positions import position_side

log = logging.getLogger("trader.live.desk")


class AccountSync:
    """Positions, fills and balance from the exchange (see the module docstring)."""

    async def load(self) -> None:
        """Exchange rules, balance, the ledger's open trades, then the exchange's positions.

        The position mirror starts from what the ledger recorded, and any difference from the exchange is
        explained by the account's fills since each trade opened (a stop or target that filled while the engine was
        down, a flatten interrupted by a crash); what no fill explains is followed with the exit marked unknown."""
        # Pairs whose fills a refusal (rate limit) kept from this load → seconds to wait: retry_catch_up reads them
        # once the weight is back, after the stops went out.
        self.catch_up_failed: dict[str, float] = {}
        for pair in self.pairs:
            self.specs[pair] = self._spec_from_market(pair)
        await self.refresh_balance()
        open_trades = self.ledger.open_trades()
        for pair, known in open_trades.items():
            if pair not in self.pairs:
                continue
            sign = 1 if known.side == "long" else -1
            self.positions[pair] = (sign * known.amount_open, known.open_rate if known.amount_open else ZERO)
            closed = known.amount - known.amount_open
            self.trades[pair] = TradeBook(known.id, known.side, stop_price=known.stop_price, entry_qty=known.amount,
                                          entry_value=known.amount * known.open_rate, exit_qty=closed,
                                          realized=known.realized_pnl, fees=known.fees, max_qty=known.amount,
                                          opened_ms=known.opened_ms if known.amount else None)
            self._recorded.update(known.filled_by_cid)
        actual = {p.pair: p for p in await self.client.fetch_positions(self.pairs)}
        for o in await self.client.fetch_open_orders():
            if o.pair in self.pairs and o.client_order_id.startswith("bsm-"):
                self._adopt(o)
        for pair in self.pairs:
            p = actual.get(pair)
            theirs = p.contracts if p is not None else ZERO
            book = self.trades.get(pair)
            if book is not None and book.id:
                # An open trade: the fills since it opened are read even when the sizes agree — the position may
                # have opened and closed again while nobody watched.
                try:
                    await self._catch_up(pair)
                except ExchangeError as exc:
                    self._error(f"{pair}: the account's fills could not be read at start: {exc}", "load")
                    self.catch_up_failed[pair] = float(getattr(exc, "wait_s", None) or 5.0)
                    continue
                book = self.trades.get(pair)
                if (book is not None and book.id and book.entry_qty == 0 and theirs == 0
                        and not any(t.pair == pair for t in self._by_cid.values())):
                    # Its entry never filled and nothing of it rests on the exchange: it never became a trade.
                    self.ledger.update_trade(book.id, status="cancelled", exit_reason="entry_not_filled")
                    self.trades.pop(pair, None)
            if self.positions[pair][0] == theirs:
                continue
            if pair not in self.trades and p is not None:
                # A position this ledger never opened (by hand, another bot): followed, protected, not booked.
                log.warning("%s: position %s on the exchange that no open trade explains; following it", pair,
                            theirs)
                self.positions[pair] = (theirs, p.entry_price)
                self.trades[pair] = TradeBook(None, p.side, entry_qty=abs(theirs),
                                              entry_value=abs(theirs) * p.entry_price, max_qty=abs(theirs))
                continue
            try:
                await self._catch_up(pair)
            except ExchangeError as exc:
                self._error(f"{pair}: the account's fills could not be read at start: {exc}", "load")
                self.catch_up_failed[pair] = float(getattr(exc, "wait_s", None) or 5.0)
            if self.positions[pair][0] != theirs:
                self._unexplained(pair, p)
        self.ledger.flush()
        # The Backtrader side starts from the mirror as it now stands; notes about how it got there would count twice.
        while not self.notes.empty():
            self.notes.get_nowait()

    async def retry_catch_up(self, max_wait_s: float = 130.0) -> list[str]:
        """Read the fills a refusal kept from ``load`` (a restart right after another spends the minute's request
        weight), waiting for the weight to come back, within ``max_wait_s``; returns the pairs still not read (the
        ledger check reports them). Call it after the stops are in place: waiting must never delay a stop."""
        deadline = time.monotonic() + max_wait_s
        pending = dict(getattr(self, "catch_up_failed", {}))
        while pending:
            wait = min(max(pending.values()) + 0.5, deadline - time.monotonic())
            if wait < 0:
                break
            await asyncio.sleep(wait)
            lock = self.__dict__.setdefault("_resync_lock", asyncio.Lock())  # never beside a running resync
            for pair in sorted(pending):
                try:
                    async with lock:
                        await self._catch_up(pair)
                except ExchangeError as exc:
                    pending[pair] = float(getattr(exc, "wait_s", None) or 5.0)
                    continue
                del pending[pair]
                log.info("%s: the account's fills read after the start-up refusal", pair)
        self.catch_up_failed = pending
        return sorted(pending)

    def _adopt(self, o: OrderState) -> None:
        """An order of ours found open on the exchange at start: follow it (it has no Backtrader order)."""
        purpose = o.client_order_id.rsplit("-", 2)[-2] if o.client_order_id.count("-") >= 3 else "exit"
        kind: Kind = "stop" if purpose == "stop" else ("take_profit" if o.is_algo else
                                                      ("limit" if o.type == "limit" else "market"))
        price = o.trigger_price or o.price
        spec = OrderSpec(-1, o.pair, "buy" if o.side == "buy" else "sell", kind, o.amount, price,
                         o.reduce_only, bool(o.raw.get("closePosition")), purpose if purpose in PROTECTIVE else "exit")
        t = Tracked(spec, trade_id=self.trades[o.pair].id if o.pair in self.trades else None, cid=o.client_order_id,
                    exchange_id=o.id, status="open", protected=True)
        self._by_cid[t.cid] = t

    async def resync(self) -> list[str]:
        """One resync at a time (a stream reconnect, the account check and the end of a maintenance window may ask
        together; two interleaved catch-ups would read the same fills): see ``_resync``."""
        lock = self.__dict__.setdefault("_resync_lock", asyncio.Lock())
        async with lock:
            return await self._resync()

    async def _resync(self) -> list[str]:
        """After a user-stream drop, or when the account check finds a difference: every live order is looked up,
        and where a position differs from the exchange, the fills that explain it are fetched from the account's
        trade list and applied (each order once, by its cumulative quantity). A difference no fill explains is
        reported and followed with the exit price marked unknown — never booked at an invented price.
        Returns the pairs whose difference stayed unexplained."""
        for t in [t for t in self._by_cid.values() if t.live]:
            await self.sync_order(t, wait=False)
        try:
            actual = {p.pair: p for p in await self.client.fetch_positions(self.pairs)}
        except ExchangeError as exc:
            self._error(f"resync positions: {exc}", "resync")
            return []
        unexplained: list[str] = []
        differed: list[str] = []
        for pair in self.pairs:
            theirs = actual[pair].contracts if pair in actual else ZERO
            if self.positions[pair][0] == theirs:
                continue
            log.warning("%s: position %s here, %s on the exchange; reading the account's fills", pair,
                        self.positions[pair][0], theirs)
            differed.append(pair)
            try:
                await self._catch_up(pair)
            except ExchangeError as exc:
                self._error(f"{pair}: the account's fills could not be read: {exc}", "resync")
                continue  # the next check tries again; nothing is booked from a guess
            if self.positions[pair][0] != theirs:
                self._unexplained(pair, actual.get(pair))
                unexplained.append(pair)
        await self.reconcile_stops()
        self._schedule_flush()
        if differed:
            # The service checks the whole ledger against the exchange after every resync that changed something.
            self.bus.publish(RiskAction(action="account_resync", reason=f"positions re-read from the exchange's fills "
                                        f"on {', '.join(differed)}"))
        return unexplained

    async def _fills_since(self, pair: str) -> int:
        """Where the account's trade list must be read from: the open trade's first fill, or — for a trade whose
        first fill was never seen — a day back on the exchange's clock (a replaying simulator's clock is not ours)."""
        book = self.trades.get(pair)
        if book is not None and book.opened_ms:
            return book.opened_ms - 60_000
        return await self.client.fetch_time() - 86_400_000

    def _tracked_by_exchange_id(self) -> dict[str, Tracked]:
        out: dict[str, Tracked] = {}
        for t in [*self._recent.values(), *self._by_cid.values()]:
            for oid in (t.exchange_id, t.engine_order_id):
                if oid:
                    out[oid] = t
        return out

    async def _catch_up(self, pair: str) -> None:
        """Apply the fills of ``pair`` that the stream never delivered, from GET /fapi/v1/userTrades.

        Only fills that belong to the pair's open trade count: its own orders (by the trade id in their client
        ids) and orders nobody's trade owns (flatten, liquidation, manual) from the trade's first fill on. Orders
        of earlier, closed trades are in the same list and must not be booked again into this one."""
        fills = await self.client.fetch_user_trades(pair, await self._fills_since(pair))
        by_order: dict[str, list[UserTrade]] = {}
        for f in fills:
            by_order.setdefault(f.order_id, []).append(f)
        tracked = self._tracked_by_exchange_id()
        resolved: list[tuple[str, list[UserTrade], Tracked | None, str]] = []
        for oid, group in by_order.items():
            t = tracked.get(oid)
            cid = t.cid if t is not None else ""
            if t is None:
                order = await self._order_for(pair, oid)
                cid = order.client_order_id if order is not None else ""
                t = self._by_cid.get(cid) or self._recent.get(cid) if cid else None
                if t is not None:
                    t.engine_order_id = oid
            resolved.append((oid, group, t, cid))
        book = self.trades.get(pair)
        tid = book.id if book is not None and book.id else None
        own_starts = [group[0].time_ms for _, group, _, cid in resolved if tid is not None and _trade_of(cid) == tid]
        start = min(own_starts) if own_starts else (book.opened_ms if book is not None else None)
        for oid, group, t, cid in sorted(resolved, key=lambda r: (r[1][0].time_ms, int(r[1][0].id))):
            owner = _trade_of(cid)
            if owner is not None and owner != tid:
                continue  # an order of another trade (closed, or booked by itself)
            if owner is None and tid is not None and (start is None or group[-1].time_ms < start):
                continue  # before this trade began: it moved an earlier position
            done = t.filled if t is not None else max(self._foreign_filled.get(oid, ZERO),
                                                      self._recorded.get(cid, ZERO))
            # The part not applied yet: an order's fills come in time order, so it is the tail past ``done``.
            qty = cost = fee = seen = ZERO
            for f in group:
                if seen >= done:
                    qty, cost, fee = qty + f.qty, cost + f.qty * f.price, fee + f.fee
                seen += f.qty
            if qty <= 0:
                continue
            last = group[-1]
            raw = {"x": "TRADE", "l": str(qty), "n": str(fee), "L": str(cost / qty), "m": last.maker,
                   "T": last.time_ms}
            total = done + qty
            average = (cost + (t.cost if t is not None else self._foreign_cost.get(oid, ZERO))) / total
            if t is not None:
                status = "closed" if t.is_algo or t.spec.kind == "market" else "open"
                amount = t.request.amount if t.request is not None else None
                self._apply(t, OrderState(oid, t.cid, pair, last.side, "market", status, amount, total, average,
                                          None, None, t.spec.reduce_only, False, last.time_ms, raw=raw))
            else:
                self._foreign_fill(OrderState(oid, cid, pair, last.side, "market", "closed", total, total, average,
                                              None, None, True, False, last.time_ms, raw=raw))

    async def _order_for(self, pair: str, oid: str) -> OrderState | None:
        cached = self._order_cache.get(oid)
        if cached is None:
            cached = await self.client.fetch_order_by_id(pair, oid)
            if cached is not None:
                self._order_cache[oid] = cached
        return cached

    def _unexplained(self, pair: str, p: Position | None) -> None:
        """The exchange's position differs and no fill explains it (fills older than the trade list reaches, or
        an account event the API does not itemise): follow the exchange, with the exit price unknown."""
        ours, entry = self.positions[pair]
        theirs = p.contracts if p is not None else ZERO
        book = self.trades.get(pair)
        why = f"{pair}: position {ours} here, {theirs} on the exchange, and no fill explains it"
        self.unexplained.append(why)
        self.unexplained_pairs.append(pair)
        self._error(why + "; the exit is recorded as unknown", "resync")
        if book is not None and book.id and ours != 0 and (theirs == 0 or (theirs > 0) != (ours > 0)):
            self.ledger.update_trade(book.id, status="exit_unknown", amount_open=ZERO, close_rate=None,
                                     exit_reason="exit_unknown", close_date=utc_from_ms(int(time.time() * 1000)))
            self.trades.pop(pair, None)
        # The Backtrader side follows at the exchange's own prices: its entry for what is open, the mark for what
        # went (its wallet is replaced by the exchange's balance at the next refresh anyway).
        mark = (p.mark_price or p.entry_price) if p is not None else None
        ref = mark or entry
        signed = theirs - ours
        self.positions[pair] = (theirs, p.entry_price if p is not None and theirs != 0 else ZERO)
        if theirs != 0 and pair not in self.trades:
            self.trades[pair] = TradeBook(None, "long" if theirs > 0 else "short", entry_qty=abs(theirs),
                                          entry_value=abs(theirs) * (p.entry_price if p else ZERO),
                                          max_qty=abs(theirs))
        self.notes.put(FillNote(None, pair, float(signed), float(ref), 0.0, int(time.time() * 1000), True,
                                "exit_unknown"))
        self.wake.set()
        self.bus.publish(RiskAction(action="exit_unknown", reason=why, pair=pair))
        if theirs == 0:
            self._spawn(pair, self._after_flat(pair))

    def _foreign_fill(self, s: OrderState) -> None:
        """Fills of an order we did not send (flatten, liquidation, a manual trade): the position mirror, the open
        trade and the strategy follow, by the cumulative quantity Binance reports for that order."""
        done = max(self._foreign_filled.get(s.id, ZERO), self._recorded.get(s.client_order_id, ZERO))
        if s.filled <= done:
            return
        delta = s.filled - done
        raw = s.raw or {}
        if raw.get("x") == "TRADE" and raw.get("l") and Decimal(str(raw["l"])) == delta and raw.get("L"):
            price = Decimal(str(raw["L"]))
            fee = Decimal(str(raw.get("n") or 0))
        else:
            avg = s.average or s.price
            if avg is None or avg <= 0:
                return  # no price for it: the account check fetches the fills from the trade list instead
            # The average over the whole order minus what was applied before gives this slice's price.
            price = (avg * s.filled - self._foreign_cost.get(s.id, ZERO)) / delta if done else avg
            rates = self.fee_rates.get(s.pair, (Decimal("0.0002"), Decimal("0.0005")))
            fee = delta * price * rates[1]
        self._foreign_filled[s.id] = s.filled
        self._foreign_cost[s.id] = self._foreign_cost.get(s.id, ZERO) + delta * price
        signed = delta if s.side == "buy" else -delta
        cid = s.client_order_id or f"ext-{s.id}"
        tag = _foreign_tag(cid)
        book = self.trades.get(s.pair)
        trade_id = book.id if book is not None else None
        # Before the fill: a foreign fill that closes the trade removes its book (a buy closing a short is no long).
        side = book.side if book is not None else position_side(signed, True)
        ts = int(raw.get("T") or s.timestamp_ms or time.time() * 1000)
        self.ledger.record_external_order(trade_id, cid, s.pair, s.side, tag, s.id)
        realized = self.book.fill(s.pair, signed, price, fee, trade_id, "exit", tag, ts)
        self.ledger.record_fill(cid, trade_id, s.pair, f"{s.id}:{s.filled}", s.side, price, delta, fee,
                                bool(raw.get("m")), realized, ts)
        self.notes.put(FillNote(None, s.pair, float(signed), float(price), float(fee), ts, True, tag))
        self.wake.set()
        self.bus.publish(OrderFilled(pair=s.pair, side=side,
                                     purpose=tag, client_order_id=cid, amount=delta, price=price, fee=fee,
                                     realized_pnl=realized if realized else None, trade_id=trade_id))
        if self.positions[s.pair][0] == 0:
            self._spawn(s.pair, self._after_flat(s.pair))
        self._schedule_balance()

    async def check_account(self) -> bool:
        """Periodic check (the engine runs it every ``account_sync_s``): balance refreshed, positions compared with
        the exchange once in-flight orders are settled; a difference triggers ``resync``. True when in step."""
        await self.refresh_balance()
        await self.drain()
        try:
            actual = {p.pair: p.contracts for p in await self.client.fetch_positions(self.pairs)}
        except ExchangeError as exc:
            self._error(f"position check: {exc}", "check")
            return False
        if all(actual.get(p, ZERO) == self.positions[p][0] for p in self.pairs):
            return True
        log.warning("positions differ from the exchange (%s here, %s there); resyncing",
                    {p: str(self.positions[p][0]) for p in self.pairs}, {p: str(v) for p, v in actual.items()})
        await self.resync()
        return False

    async def refresh_balance(self) -> None:
        try:
            b = await self.client.fetch_balance()
        except ExchangeError as exc:
            self._error(f"balance: {exc}", "balance")
            return
        self.wallet, self.available = b.wallet, b.available
        self.notes.put(WalletNote(float(b.wallet), float(b.available)))
        self.wake.set()

    def _schedule_balance(self) -> None:
        if self._balance_task is None or self._balance_task.done():
            self._balance_task = asyncio.get_running_loop().create_task(self.refresh_balance())


def _foreign_tag(cid: str) -> str:
    """What closed (or opened) a position, from the client id of an order the desk is not following."""
    if cid.startswith("autoclose") or cid.startswith("adl_autoclose") or cid.startswith("settlement_autoclose"):
        return "liquidation"
    if cid.startswith("bsm-"):
        purpose = cid.rsplit("-", 2)[-2] if cid.count("-") >= 3 else ""
        return {"flat": "flatten", "stop": "stop", "entry": "entry", "force": "force_exit"}.get(purpose, purpose or
                                                                                              "exit")
    return "external"


def _trade_of(cid: str) -> int | None:
    """The trade an order of ours belongs to, from its client id (``bsm-[run-]<trade>-<purpose>-<seq>``); None for
    orders no trade owns: someone else's, a flatten's (its middle number is a position index), trade 0's."""
    if not cid.startswith("bsm-"):
        return None
    parts = cid.split("-")
    if len(parts) < 4 or parts[-2] == "flat":
        return None
    try:
        trade = int(parts[-3])
    except ValueError:
        return None
    return trade or None
