"""The order desk: the exchange side of the live broker, living on the engine loop.

It turns order specs from the Backtrader thread into exchange orders, follows them through REST answers and the
user-data stream, keeps a mirror of each position, writes Trade/Order/Fill rows, publishes events, and hands
fills and status changes back to the Backtrader thread as notes (a thread-safe queue plus a wake-up event).

Invariants it keeps, because a futures position without a stop can lose the whole account:
- after an entry fill is known (REST answer or stream, whichever comes first) the stop goes out *first*, then
  the targets; if the stop cannot be placed the position is closed at market (``close_unprotected``);
- a stop is never cancelled while it is the only one protecting an open position: the cancel waits until a
  replacement is live on the exchange (or the position is flat);
- every order gets a deterministic client id recorded before it is sent; an unknown outcome is resolved by that id;
- ``reconcile_stops`` places a stop for every exchange position that has none (start-up, recovery, reconnects).

Fills are counted from cumulative filled quantities per client id, so the same fill reported by a REST answer
and by the stream is counted once; a triggered algo order reports its fills under the algo's client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Iterable
from decimal import Decimal
from typing import Any, Literal

from trader.backtest.instruments import InstrumentSpec, instrument_spec
from trader.events import EngineError, EventBus, OrderFilled, OrderPlaced, RiskAction, StopHit, StopMoved
from trader.exchange.client import ExchangeClient, not_sent
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderRequest, OrderState, Position, UserTrade
from trader.exchange.order_ids import client_order_id
from trader.live.ledger import Ledger, OrderRow, utc_from_ms
from trader.live.orders import (
    PROTECTIVE,
    TERMINAL,
    ZERO,
    DeskOptions,
    FillNote,
    Kind,
    Note,
    OrderSpec,
    StatusNote,
    StopRepair,
    Tracked,
    TradeBook,
    WalletNote,
)
from trader.live.positions import PositionBook

log = logging.getLogger(__name__)

class OrderDesk:
    def __init__(self, client: ExchangeClient, pairs: Iterable[str], *, leverage: int, ledger: Ledger | None = None,
                 bus: EventBus | None = None, options: DeskOptions | None = None):
        self.client = client
        self.pairs = list(pairs)
        self.leverage = leverage
        self.ledger = ledger or Ledger()
        self.bus = bus or EventBus()
        self.options = options or DeskOptions()
        self.notes: queue.SimpleQueue[Note] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.specs: dict[str, InstrumentSpec] = {}
        self.fee_rates: dict[str, tuple[Decimal, Decimal]] = {}  # maker, taker
        self.book = PositionBook(self.ledger, leverage)
        self.positions = self.book.positions  # pair -> (signed size, entry price), as filled
        self.trades = self.book.trades  # pair -> the open trade's running numbers
        self.wallet = ZERO
        self.available = ZERO
        self.entry_block: str | None = None  # why new entries are refused (pause, latency tier, ...)
        self.risk_scale = 1.0  # strategies size new entries by this share of their risk (latency safe mode: 0.5)
        self._by_cid: dict[str, Tracked] = {}  # live orders (and children waiting for their entry)
        self._by_ref: dict[int, Tracked] = {}
        self._recent: OrderedDict[str, Tracked] = OrderedDict()  # finished ones, for late stream updates
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._inflight: dict[str, set[asyncio.Task[Any]]] = defaultdict(set)
        self._balance_task: asyncio.Task[None] | None = None
        # Cumulative quantity applied per exchange order id, for orders the desk did not send (flatten, liquidation,
        # manual): whichever source reports a fill first (stream, REST, the account's trade list) applies it, the
        # others find it counted. Keyed by Binance's order id, never by a made-up one.
        self._foreign_filled: dict[str, Decimal] = {}
        self._foreign_cost: dict[str, Decimal] = {}
        self._order_cache: dict[str, OrderState] = {}
        self._recorded: dict[str, Decimal] = {}  # client id -> quantity the ledger holds fills for (from before a restart)
        self.unexplained: list[str] = []  # position differences no fill could explain (exit marked unknown)
        self.unexplained_pairs: list[str] = []
        self._flush_scheduled = False
        self._background: set[asyncio.Task[None]] = set()  # lookups of unknown outcomes
        self.errors: list[str] = []

    # -- start-up -----------------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Exchange rules, balance, the ledger's open trades, then the exchange's positions.

        The position mirror starts from what the ledger recorded, and any difference from the exchange is
        explained by the account's fills since each trade opened (a stop or target that filled while the engine was
        down, a flatten interrupted by a crash); what no fill explains is followed with the exit marked unknown."""
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
            if self.positions[pair][0] != theirs:
                self._unexplained(pair, p)
        self.ledger.flush()
        # The Backtrader side starts from the mirror as it now stands; notes about how it got there would count twice.
        while not self.notes.empty():
            self.notes.get_nowait()

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

    def _spec_from_market(self, pair: str) -> InstrumentSpec:
        base = instrument_spec(pair)
        try:
            m = self.client.market(pair)
        except Exception:  # markets not loaded (no initialize): the snapshot rules stand
            return base
        prec = m.get("precision") or {}
        cost = ((m.get("limits") or {}).get("cost") or {}).get("min")
        self.fee_rates[pair] = (Decimal(str(m.get("maker") or "0.0002")), Decimal(str(m.get("taker") or "0.0005")))
        return InstrumentSpec(pair, float(prec.get("amount") or base.step_size), float(prec.get("price") or base.tick_size),
                              float(cost or base.min_notional), base.liquidation_fee, base.brackets, base.assumed)

    def spec(self, pair: str) -> InstrumentSpec:
        s = self.specs.get(pair)
        if s is None:
            s = self.specs[pair] = instrument_spec(pair)
        return s

    # -- the Backtrader thread's entry points (scheduled onto the loop) -------------------------------------------
    def submit_group(self, specs: list[OrderSpec]) -> None:
        """Called on the engine loop: the first spec is the order, the others are its protective children."""
        parent = Tracked(specs[0])
        parent.children = [Tracked(s) for s in specs[1:]]
        parent.protected = not parent.children
        for t in (parent, *parent.children):
            self._by_ref[t.spec.ref] = t
        self._spawn(parent.pair, self._send(parent))

    def cancel_ref(self, ref: int) -> None:
        t = self._by_ref.get(ref)
        if t is None or not t.live:
            return
        if t.status == "pending" and not t.cid:
            # Not sent yet (a child waiting for its entry, or an op queued behind the pair lock).
            t.cancel_requested = True
            if not self._is_unsent_child(t):
                return
            self._finish(t, "canceled", "cancelled before it was sent")
            return
        self._spawn(t.pair, self._cancel(t))

    def _is_unsent_child(self, t: Tracked) -> bool:
        return any(t in p.children and not p.protected for p in self._by_ref.values())

    # -- sending ------------------------------------------------------------------------------------------------
    def _spawn(self, pair: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        async def locked() -> Any:
            async with self._locks[pair]:
                return await coro

        task = asyncio.get_running_loop().create_task(locked())
        self._inflight[pair].add(task)
        task.add_done_callback(self._op_done(pair))
        return task

    def _op_done(self, pair: str):  # noqa: ANN202
        def done(task: asyncio.Task[Any]) -> None:
            self._inflight[pair].discard(task)
            if not task.cancelled() and task.exception() is not None:
                self._error(f"{pair}: {task.exception()!r}", "desk")
            self._schedule_flush()
        return done

    def _schedule_flush(self) -> None:
        if self.ledger.dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Bookkeeping waits while orders are on their way: a stop must never queue behind a database write."""
        self._flush_scheduled = False
        self._background: set[asyncio.Task[None]] = set()  # lookups of unknown outcomes
        if any(list(self._inflight.values())):
            return  # the last op to finish schedules it again
        try:
            self.ledger.flush()
        except Exception as exc:  # the exchange is the truth; recovery can rebuild these rows
            self._error(f"ledger write failed: {exc!r}", "ledger")

    def _build(self, t: Tracked, trade_id: int, *, record: bool = True) -> OrderRequest:
        s = t.spec
        seq = self.ledger.next_seq(trade_id, s.purpose)
        t.trade_id = trade_id
        t.cid = client_order_id(trade_id, s.purpose, seq, run=self.options.run)
        wt = self.options.working_type
        if s.kind == "market":
            req = OrderRequest(s.pair, s.side, "market", t.cid, amount=s.amount, reduce_only=s.reduce_only)
        elif s.kind == "limit":
            req = OrderRequest(s.pair, s.side, "limit", t.cid, amount=s.amount, price=s.price,
                               reduce_only=s.reduce_only)
        elif s.kind == "stop":
            req = OrderRequest(s.pair, s.side, "stop_market", t.cid, amount=None if s.close_position else s.amount,
                               trigger_price=s.price, reduce_only=s.reduce_only and not s.close_position,
                               close_position=s.close_position, working_type=wt)
        else:
            req = OrderRequest(s.pair, s.side, "take_profit_market", t.cid,
                               amount=None if s.close_position else s.amount, trigger_price=s.price,
                               reduce_only=s.reduce_only and not s.close_position, close_position=s.close_position,
                               working_type=wt)
        t.request = req
        if record:
            self.ledger.record_order(self._row(t))
        self._by_cid[t.cid] = t
        return req

    @staticmethod
    def _row(t: Tracked) -> OrderRow:
        req = t.request
        assert req is not None
        return OrderRow(t.trade_id or None, t.cid, t.pair, req.type, t.spec.side, t.spec.purpose, req.amount, req.price,
                        req.trigger_price, req.reduce_only, req.close_position)

    def _build_for_trade(self, t: Tracked) -> OrderRequest:
        """Client id and ledger rows for ``t``: an entry from flat opens a trade (trade and order rows in one
        commit); anything else belongs to the pair's open trade, or to trade 0 when the position is not ours."""
        s = t.spec
        book = self.trades.get(s.pair)
        size = self.positions[s.pair][0]
        if book is not None and book.id is not None and (size != 0 or not s.is_entry):
            return self._build(t, book.id)
        if not s.is_entry:
            return self._build(t, 0)
        side = "long" if s.side == "buy" else "short"
        stop = next((c.spec.price for c in t.children if c.spec.purpose == "stop"), None)

        def first_order(tid: int) -> OrderRow:
            self._build(t, tid, record=False)
            return self._row(t)

        tid = self.ledger.new_trade(s.pair, side, self.leverage, enter_tag=s.tag, stop_price=stop,
                                    first_order=first_order)
        self.trades[s.pair] = TradeBook(tid, side, stop_price=stop)
        assert t.request is not None
        return t.request

    def _trade_for(self, t: Tracked) -> int:
        book = self.trades.get(t.pair)
        return book.id if book is not None and book.id is not None else 0

    async def _send(self, t: Tracked) -> None:
        if t.cancel_requested:
            self._finish(t, "canceled", "cancelled before it was sent")
            return
        if t.spec.is_entry and self.entry_block:
            self._finish(t, "rejected", f"entries blocked: {self.entry_block}")
            return
        if t.spec.purpose in PROTECTIVE and not t.spec.is_entry:
            await self._send_protective(t)
            return
        req = self._build_for_trade(t)
        state = await self._create(t, req)
        if state is None:
            return
        self._publish_placed(t)
        self._apply(t, state)
        if t.filled > 0:
            await self._protect(t)
        elif t.spec.purpose == "stop":
            await self._replaced(t)

    def _still_wanted(self, t: Tracked) -> bool:
        """Asked by the client before an order held back by rate limiting goes out: the account may have moved
        meanwhile (a stop filled, a flatten ran), and a stale exit would be rejected (−2022) or, worse, act twice."""
        if t.cancel_requested:
            return False
        size = self.positions[t.pair][0]
        if t.spec.is_entry:
            return not self.entry_block
        # A reduce-only order needs a position on the other side of it.
        return (size > 0 and t.spec.side == "sell") or (size < 0 and t.spec.side == "buy")

    async def _create(self, t: Tracked, req: OrderRequest) -> OrderState | None:
        try:
            state = await self.client.create_order(req, still_wanted=lambda _r: self._still_wanted(t))
        except ExchangeError as exc:
            if not not_sent(exc) and (exc.info.state_unknown or exc.info.retryable):
                try:
                    state = await self.client.find_order(req)
                except ExchangeError:
                    # Sent or not, nobody can tell yet: it stays live (its children too) and is looked up until
                    # the exchange answers; a fill found later is protected like any other.
                    t.status = "open"
                    task = asyncio.get_running_loop().create_task(self._resolve_later(t, req))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                    return None
                if state is not None:
                    return state
            reason = f"{exc.info.code}: {exc.info.message}" if exc.info.code else str(exc)
            margin = exc.info.code in (-2019, -2027, -2028)
            self.ledger.update_order(t.cid, status="rejected")
            self._finish(t, "margin" if margin else "rejected", reason)
            if t.spec.is_entry and self.positions[t.pair][0] == 0 and t.trade_id:
                self.ledger.update_trade(t.trade_id, status="cancelled", exit_reason="rejected")
                self.trades.pop(t.pair, None)
            return None
        t.exchange_id = state.id
        if t.status == "pending":
            t.status = "open"
        return state

    async def _resolve_later(self, t: Tracked, req: OrderRequest, attempts: int = 60, delay_s: float = 1.0) -> None:
        for _ in range(attempts):
            await asyncio.sleep(delay_s)
            if not t.live:
                return  # the stream told us meanwhile
            try:
                state = await self.client.find_order(req)
            except ExchangeError:
                continue
            if state is None:
                self._finish(t, "rejected", "not on the exchange after an unknown outcome")
                return
            t.exchange_id = state.id
            self._apply(t, state)
            if t.filled > 0 and t.children and not t.protected:
                self._spawn(t.pair, self._protect(t))
            return
        self._error(f"{t.cid}: outcome still unknown after {attempts} lookups", "create")
        self._spawn(t.pair, self._ensure_stop(t.pair))

    # -- protection ---------------------------------------------------------------------------------------------
    async def _protect(self, entry: Tracked) -> None:
        """Place the entry's children: the stop first, then the targets."""
        if entry.protected:
            return
        entry.protected = True
        kids = sorted(entry.children, key=lambda c: c.spec.purpose != "stop")
        for child in kids:
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

    # -- cancelling ---------------------------------------------------------------------------------------------
    async def _cancel(self, t: Tracked, force: bool = False) -> None:
        if not t.live:
            return
        if t.status == "pending" and not t.cid:
            t.cancel_requested = True
            return
        if not force and t.spec.purpose == "stop" and self.positions[t.pair][0] != 0 and not self._other_stop(t):
            # The only stop of an open position: keep it until its replacement is live.
            t.cancel_when_replaced = True
            return
        try:
            gone = await self.client.cancel_order(t.pair, t.exchange_id or "", algo=t.is_algo)
        except ExchangeError as exc:
            self._error(f"cancel {t.cid}: {exc}", "cancel")
            return
        if gone:
            self.ledger.update_order(t.cid, status="canceled")
            self._finish(t, "canceled")
        else:
            await self.sync_order(t, wait=False)  # it filled or expired meanwhile: learn how

    def _other_stop(self, t: Tracked) -> bool:
        return any(o is not t and o.pair == t.pair and o.spec.purpose == "stop" and o.status == "open"
                   and not o.cancel_when_replaced for o in self._by_cid.values())

    # -- following orders ---------------------------------------------------------------------------------------
    async def on_orders(self, states: list[OrderState]) -> None:
        """The user-data stream's order updates."""
        for s in states:
            t = self._by_cid.get(s.client_order_id) or self._recent.get(s.client_order_id)
            if t is not None:
                self._apply(t, s)
            elif s.pair in self.pairs and s.filled > 0 and not s.is_algo:
                self._foreign_fill(s)
        self._schedule_flush()

    def _apply(self, t: Tracked, s: OrderState) -> None:
        if s.is_algo and t.is_algo:
            # The conditional itself: fills are reported by the order it triggers (same client id).
            if s.raw.get("ai"):
                t.engine_order_id = str(s.raw["ai"])
            if s.status == "closed":
                t.triggered = True
            elif s.status in ("canceled", "expired", "rejected") and t.filled == 0 and t.live:
                self.ledger.update_order(t.cid, status=s.status)
                self._finish(t, s.status)
            return
        reported_done = False
        if s.filled > t.filled:
            delta = s.filled - t.filled
            avg = s.average or s.price or ZERO
            cost = avg * s.filled
            price = (cost - t.cost) / delta if t.cost else avg
            raw = s.raw or {}
            if price <= 0:
                price = Decimal(str(raw.get("L") or avg))
            maker = bool(raw.get("m"))
            if raw.get("x") == "TRADE" and raw.get("l") and Decimal(str(raw["l"])) == delta:
                fee = Decimal(str(raw.get("n") or 0))
            else:
                rates = self.fee_rates.get(t.pair, (Decimal("0.0002"), Decimal("0.0005")))
                fee = delta * price * (rates[0] if maker else rates[1])
            t.filled, t.cost, t.fee = s.filled, cost, t.fee + fee
            ts = int(raw.get("T") or s.timestamp_ms or time.time() * 1000)
            key = f"{s.id}:{s.filled}"
            reported_done = s.status in TERMINAL
            self._fill(t, delta, price, fee, maker, ts, key, done=reported_done)
        if s.status in TERMINAL and t.live:
            self.ledger.update_order(t.cid, status=s.status, exchange_id=s.id, filled=t.filled,
                                     average=(t.cost / t.filled) if t.filled else None)
            if t.filled == 0:
                self._finish(t, s.status)
            else:
                t.status = "closed"
                t.done.set()
                if not reported_done and t.spec.ref >= 0:
                    self.notes.put(StatusNote(t.spec.ref, "completed"))
                    self.wake.set()
                self._retire(t)
        elif s.status == "open" and t.status == "pending":
            t.status = "open"

    def _fill(self, t: Tracked, qty: Decimal, price: Decimal, fee: Decimal, maker: bool, ts: int, key: str,
              done: bool) -> None:
        pair = t.pair
        signed = qty if t.spec.side == "buy" else -qty
        realized = self.book.fill(pair, signed, price, fee, t.trade_id, t.spec.purpose, t.spec.tag, ts)
        self.ledger.record_fill(t.cid, t.trade_id or None, pair, key, t.spec.side, price, qty, fee, maker, realized, ts)
        self.notes.put(FillNote(t.spec.ref if t.spec.ref >= 0 else None, pair, float(signed), float(price),
                                float(fee), ts, done, t.spec.tag or t.spec.purpose))
        self.wake.set()
        book = self.trades.get(pair)
        side = book.side if book else ("long" if signed > 0 else "short")
        self.bus.publish(OrderFilled(pair=pair, side=side, purpose=_event_purpose(t.spec),
                                     client_order_id=t.cid, amount=qty, price=price, fee=fee,
                                     realized_pnl=realized if realized else None, trade_id=t.trade_id))
        if t.spec.purpose == "stop":
            self.bus.publish(StopHit(pair=pair, trade_id=t.trade_id, price=price, realized_pnl=realized))
        self._after_fill(t, pair)

    def _after_fill(self, t: Tracked, pair: str) -> None:
        if self.positions[pair][0] == 0:
            self._spawn(pair, self._after_flat(pair))
        elif t.children and not t.protected:
            self._spawn(pair, self._protect(t))
        elif not self._has_stop(pair):
            # A position without a stop (an entry sent without one, a resolved unknown outcome, a fill from
            # elsewhere): the safety net gives it the fallback stop.
            self._spawn(pair, self._ensure_stop(pair))
        self._schedule_balance()

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
        ts = int(raw.get("T") or s.timestamp_ms or time.time() * 1000)
        self.ledger.record_external_order(trade_id, cid, s.pair, s.side, tag, s.id)
        realized = self.book.fill(s.pair, signed, price, fee, trade_id, "exit", tag, ts)
        self.ledger.record_fill(cid, trade_id, s.pair, f"{s.id}:{s.filled}", s.side, price, delta, fee,
                                bool(raw.get("m")), realized, ts)
        self.notes.put(FillNote(None, s.pair, float(signed), float(price), float(fee), ts, True, tag))
        self.wake.set()
        self.bus.publish(OrderFilled(pair=s.pair, side=book.side if book else ("long" if signed > 0 else "short"),
                                     purpose=tag, client_order_id=cid, amount=delta, price=price, fee=fee,
                                     realized_pnl=realized if realized else None, trade_id=trade_id))
        if self.positions[s.pair][0] == 0:
            self._spawn(s.pair, self._after_flat(s.pair))
        self._schedule_balance()

    def _finish(self, t: Tracked, status: str, reason: str = "") -> None:
        """A terminal state without (further) fills: tell the Backtrader side, cascade to unsent children."""
        was_live = t.live
        t.status = status if status != "margin" else "rejected"
        t.done.set()
        if not was_live:
            return
        self._retire(t)
        if t.spec.ref >= 0:
            self.notes.put(StatusNote(t.spec.ref, status if status in ("canceled", "expired", "rejected", "margin")
                                      else "canceled", reason))
            self.wake.set()
        if reason and status in ("rejected", "margin"):
            log.warning("%s %s %s: %s", t.pair, t.spec.purpose, status, reason)
        if t.filled == 0:
            for child in t.children:
                if child.live:
                    self._finish(child, "canceled", "parent order did not fill")

    def _retire(self, t: Tracked) -> None:
        """Finished orders leave the live tables (every candle walks them); the last few hundred stay findable."""
        if self._by_cid.pop(t.cid, None) is not None:
            self._recent[t.cid] = t
            while len(self._recent) > 512:
                self._recent.popitem(last=False)
        if self._by_ref.get(t.spec.ref) is t:
            del self._by_ref[t.spec.ref]

    # -- keeping in step ----------------------------------------------------------------------------------------
    async def sync_order(self, t: Tracked, *, wait: bool = True) -> None:
        """Make sure ``t``'s state is known: the stream gets ``sync_timeout_s``, then REST is asked."""
        if wait and t.live:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(t.done.wait(), self.options.sync_timeout_s)
        if not t.live or not t.cid:
            return
        try:
            state = await self.client.fetch_order(t.pair, t.cid, algo=t.is_algo)
            if state is None:
                return
            self._apply(t, state)
            if t.is_algo and state.status == "closed":
                child = await self.client.fetch_order(t.pair, t.cid, algo=False)
                if child is not None:
                    self._apply(t, child)
        except ExchangeError as exc:
            self._error(f"sync {t.cid}: {exc}", "sync")

    async def settle(self, pair: str, low: float, high: float) -> None:
        """The candle gate, before a closed candle reaches the strategy: operations on the pair have finished and
        every order whose level the candle reached is known filled or not, so the strategy decides on the same
        account state a backtest bar would show."""
        await self.drain(pair)
        band = self.options.mark_band if self.options.working_type == "MARK_PRICE" else 0.0
        for t in [t for t in self._by_cid.values() if t.pair == pair and t.status == "open" and t.spec.price]:
            if t.spec.kind == "market":
                continue
            level = float(t.spec.price or 0)
            if low * (1 - band) <= level <= high * (1 + band):
                await self.sync_order(t)
        await self.drain(pair)
        if self._balance_task is not None and not self._balance_task.done():
            with contextlib.suppress(Exception):
                await self._balance_task

    async def drain(self, pair: str | None = None) -> None:
        """Wait for in-flight operations (on one pair or all)."""
        for _ in range(100):
            tasks = [t for p, ts in self._inflight.items() if pair is None or p == pair for t in ts]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop background lookups (the engine is stopping; recovery resolves those orders at the next start)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.drain()
        self.ledger.flush()

    def busy(self) -> bool:
        """Anything in flight (safe to ask from another thread: a table changing meanwhile counts as busy)."""
        try:
            inflight = any(list(self._inflight.values()))
        except RuntimeError:
            return True
        return inflight or self.ledger.dirty or (self._balance_task is not None and not self._balance_task.done())

    async def resync(self) -> list[str]:
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
        """Apply the fills of ``pair`` that the stream never delivered, from GET /fapi/v1/userTrades."""
        fills = await self.client.fetch_user_trades(pair, await self._fills_since(pair))
        by_order: dict[str, list[UserTrade]] = {}
        for f in fills:
            by_order.setdefault(f.order_id, []).append(f)
        tracked = self._tracked_by_exchange_id()
        for oid, group in by_order.items():
            t = tracked.get(oid)
            cid = t.cid if t is not None else ""
            if t is None:
                order = await self._order_for(pair, oid)
                cid = order.client_order_id if order is not None else ""
                t = self._by_cid.get(cid) or self._recent.get(cid) if cid else None
                if t is not None:
                    t.engine_order_id = oid
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

    # -- stops for every position -------------------------------------------------------------------------------
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

    # -- misc ---------------------------------------------------------------------------------------------------
    def _publish_placed(self, t: Tracked) -> None:
        req = t.request
        assert req is not None
        book = self.trades.get(t.pair)
        side = book.side if book else ("long" if t.spec.side == "buy" else "short")
        self.bus.publish(OrderPlaced(pair=t.pair, side=side, purpose=_event_purpose(t.spec),
                                     client_order_id=t.cid, amount=req.amount,
                                     price=req.price or req.trigger_price, trade_id=t.trade_id))

    def _error(self, message: str, where: str) -> None:
        log.error("%s: %s", where, message)
        self.errors.append(message)
        self.bus.publish(EngineError(message=message, where=f"live.{where}"))

    def open_orders(self, pair: str | None = None) -> list[Tracked]:
        return [t for t in self._by_cid.values() if t.live and (pair is None or t.pair == pair)]

    def snapshot(self) -> dict[str, Any]:
        return {
            "positions": {p: (str(s), str(e)) for p, (s, e) in self.positions.items() if s != 0},
            "trades": {p: b.id for p, b in self.trades.items()},
            "open_orders": [(t.cid, t.spec.purpose, str(t.spec.price)) for t in self.open_orders()],
            "wallet": str(self.wallet),
            "entry_block": self.entry_block,
            "errors": len(self.errors),
        }


def _is_stop(o: OrderState) -> bool:
    kind = str(o.raw.get("orderType") or o.raw.get("type") or o.raw.get("o") or "").upper()
    if kind:
        return kind in ("STOP_MARKET", "STOP", "TRAILING_STOP_MARKET")
    return "-stop-" in o.client_order_id


def _foreign_tag(cid: str) -> str:
    """What closed (or opened) a position, from the client id of an order the desk is not following."""
    if cid.startswith("autoclose") or cid.startswith("adl_autoclose") or cid.startswith("settlement_autoclose"):
        return "liquidation"
    if cid.startswith("bsm-"):
        purpose = cid.rsplit("-", 2)[-2] if cid.count("-") >= 3 else ""
        return {"flat": "flatten", "stop": "stop", "entry": "entry", "force": "force_exit"}.get(purpose, purpose or
                                                                                              "exit")
    return "external"


def _event_purpose(spec: OrderSpec) -> str:
    if spec.is_entry:
        return "entry"
    if spec.purpose in ("tp1", "tp2", "tp3"):
        return "take_profit"
    if spec.purpose == "flat":
        return "flatten"
    return "stop" if spec.purpose == "stop" else "exit"
