"""The order desk: the exchange side of the live broker, living on the engine loop.

It turns order specs from the strategy's broker into exchange orders, follows them through REST answers and the
user-data stream, keeps a mirror of each position, writes Trade/Order/Fill rows, publishes events, and hands
fills and status changes back to the broker as notes (a thread-safe queue plus the strategy's wake-up).

Invariants it keeps, because a futures position without a stop can lose the whole account:
- after an entry fill is known (REST answer or stream, whichever comes first) the stop goes out *first*, then
  the targets; if the stop cannot be placed the position is closed at market (``close_unprotected``);
- a stop is never cancelled while it is the only one protecting an open position: the cancel waits until a
  replacement is live on the exchange (or the position is flat);
- every order gets a deterministic client id recorded before it is sent; an unknown outcome is resolved by that id;
- ``reconcile_stops`` places a stop for every exchange position that has none (start-up, recovery, reconnects).

Two parts live in modules of their own and are mixed into ``OrderDesk`` (one object, one state): protection
(trader/live/protection.py: stops and targets, repairs) and account sync (trader/live/account_sync.py: start-up
from the ledger, resync from the account's fills, foreign fills, balance).

Fills are counted from cumulative filled quantities per client id, so the same fill reported by a REST answer
and by the stream is counted once; a triggered algo order reports its fills under the algo's client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from trader.events import EngineError, EventBus, OrderFilled, OrderPlaced, StopHit
from trader.exchange.client import ExchangeClient, not_sent
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderRequest, OrderState
from trader.exchange.order_ids import client_order_id
from trader.execution.optimiser import ExecutionRules
from trader.live.account_sync import AccountSync
from trader.live.ledger import Ledger, OrderRow
from trader.live.orders import (
    PROTECTIVE,
    TERMINAL,
    ZERO,
    DeskOptions,
    FillNote,
    Note,
    OrderSpec,
    StatusNote,
    Tracked,
    TradeBook,
)
from trader.live.positions import PositionBook, position_side
from trader.live.protection import Protection
from trader.live.slicing import Execution
from trader.model.instruments import InstrumentSpec

log = logging.getLogger(__name__)

FLUSH_HOLD_MAX_S = 1.0  # the longest candles hold the ledger's bookkeeping back


class OrderDesk(Protection, AccountSync, Execution):
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
        # The market-side watch (trader/execution/market.py: books, liquidity tiers, maintenance) when the engine
        # runs one, and the execution optimiser's rules (trader/live/slicing.py).
        self.market: Any = None
        self.exec_rules = ExecutionRules()
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
        # The ledger's bookkeeping never runs ahead of a candle on its way to the strategy (a flush is a SQLite
        # transaction: 1-8 ms, a checkpoint's sync included). ``candles_pending`` is the candle stream's (a minute
        # partly released); ``settle`` counts the candles waiting at the gate.
        self.candles_pending: Callable[[], bool] | None = None
        self._settling = 0
        self._flush_held_since: float | None = None
        self._background: set[asyncio.Task[None]] = set()  # lookups of unknown outcomes
        self.errors: list[str] = []

    # -- start-up -----------------------------------------------------------------------------------------------

    def _spec_from_market(self, pair: str) -> InstrumentSpec:
        """The pair's rules as the exchange states them: exchangeInfo filters and the leverage brackets the client
        read at start (the bundled snapshot's where they could not be read, marked assumed); MissingRules naming
        what is missing otherwise — never made-up filters."""
        spec = self.client.instrument(pair)
        try:
            m = self.client.market(pair)
        except Exception:  # markets not loaded (no initialize): default fee rates
            return spec
        self.fee_rates[pair] = (Decimal(str(m.get("maker") or "0.0002")), Decimal(str(m.get("taker") or "0.0005")))
        return spec

    def spec(self, pair: str) -> InstrumentSpec:
        s = self.specs.get(pair)
        if s is None:
            s = self.specs[pair] = self._spec_from_market(pair)
        return s

    # -- the broker's entry points (called on the loop) ---------------------------------------------------------
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
        """Bookkeeping waits while orders are on their way (a stop must never queue behind a database write) and
        while candles are (a candle waiting at the gate for an operation to finish would otherwise wait for the
        flush that operation's end schedules, before the strategy sees it)."""
        self._flush_scheduled = False
        if any(list(self._inflight.values())):
            return  # the last op to finish schedules it again
        if self._flush_held():
            return  # the candle stream schedules it once the minute is out (or the hold's bound passes)
        try:
            self.ledger.flush()
        except Exception as exc:  # the exchange is the truth; recovery can rebuild these rows
            self._error(f"ledger write failed: {exc!r}", "ledger")

    def _flush_held(self) -> bool:
        if not (self._settling or (self.candles_pending is not None and self.candles_pending())):
            self._flush_held_since = None
            return False
        now = time.monotonic()
        if self._flush_held_since is None:
            self._flush_held_since = now
            # Should no end of the minute come (a pair whose candle never arrives), the bound still frees it.
            asyncio.get_running_loop().call_later(FLUSH_HOLD_MAX_S, self._schedule_flush)
        elif now - self._flush_held_since >= FLUSH_HOLD_MAX_S:
            self._flush_held_since = None
            return False
        return True

    def candles_done(self) -> None:
        """The candle stream: a minute is out to the strategy; bookkeeping held back for it can go."""
        if self._flush_held_since is not None:
            self._schedule_flush()

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
                               reduce_only=s.reduce_only, time_in_force="GTX" if s.post_only else "GTC")
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
        self._tape(t)
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
        if t.spec.is_entry:
            refusal = self.entry_refusal(t.pair)
            if refusal:
                self._refuse_entry(t, refusal)
                return
            plan = self._plan(t)
            if plan is not None and not plan.simple:
                await self._send_sliced(t, plan)
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
        if t.cancel_requested or (t.exec_parent is not None and t.exec_parent.cancel_requested):
            return False
        size = self.positions[t.pair][0]
        if t.spec.is_entry:
            return not self.entry_refusal(t.pair)
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
                self._record_execution(t)
        elif s.status == "open" and t.status == "pending":
            t.status = "open"

    def _fill(self, t: Tracked, qty: Decimal, price: Decimal, fee: Decimal, maker: bool, ts: int, key: str,
              done: bool) -> None:
        pair = t.pair
        signed = qty if t.spec.side == "buy" else -qty
        # The position's side as it was before this fill: a fill that closes the trade removes its book, and a buy
        # that closes a short must not be told as "long".
        before = self.trades.get(pair)
        side = before.side if before else position_side(signed, t.spec.purpose == "entry")
        realized = self.book.fill(pair, signed, price, fee, t.trade_id, t.spec.purpose, t.spec.tag, ts)
        slip = self._tape(t).fill(qty, price, maker)
        self.ledger.record_fill(t.cid, t.trade_id or None, pair, key, t.spec.side, price, qty, fee, maker, realized, ts,
                                slippage_bp=slip)
        owner = t.exec_parent
        if owner is not None:
            # A slice: its fills belong to the sliced entry's Backtrader order, which completes once, at the end.
            owner.filled += qty
            owner.cost += qty * price
            owner.fee += fee
        bt_side = owner or t
        self.notes.put(FillNote(bt_side.spec.ref if bt_side.spec.ref >= 0 else None, pair, float(signed), float(price),
                                float(fee), ts, done and owner is None, bt_side.spec.tag or bt_side.spec.purpose))
        self.wake.set()
        self.bus.publish(OrderFilled(pair=pair, side=side, purpose=_event_purpose(t.spec),
                                     client_order_id=t.cid, amount=qty, price=price, fee=fee,
                                     realized_pnl=realized if realized else None, trade_id=t.trade_id))
        if t.spec.purpose == "stop":
            self.bus.publish(StopHit(pair=pair, trade_id=t.trade_id, price=price, realized_pnl=realized))
        self._after_fill(bt_side, pair)

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

    def _finish(self, t: Tracked, status: str, reason: str = "") -> None:
        """A terminal state without (further) fills: tell the Backtrader side, cascade to unsent children."""
        was_live = t.live
        t.status = status if status != "margin" else "rejected"
        t.done.set()
        if not was_live:
            return
        self._retire(t)
        self._record_execution(t)  # a partly filled order that ended (cancelled, expired) still executed
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

    def gate_open(self, pair: str) -> bool:
        """True when ``settle`` has nothing to wait for on ``pair``: no operation in flight on it, no resting
        priced order of it (a candle's range may have reached one) and no balance refresh under way. The candle
        stream asks this first and skips the gate's coroutines for most candles, the ones before an order's among
        them."""
        return not (self._inflight.get(pair) or self._refreshing_balance() or self._resting_priced(pair))

    def _resting_priced(self, pair: str) -> list[Tracked]:
        """The pair's open orders with a price or trigger: a candle's range may have reached them."""
        return [t for t in self._by_cid.values() if t.pair == pair and t.status == "open" and t.spec.price]

    def _refreshing_balance(self) -> bool:
        return self._balance_task is not None and not self._balance_task.done()

    async def settle(self, pair: str, low: float, high: float) -> None:
        """The candle gate, before a closed candle reaches the strategy: operations on the pair have finished and
        every order whose level the candle reached is known filled or not, so the strategy decides on the same
        account state a backtest bar would show."""
        self._settling += 1
        try:
            await self.drain(pair)
            band = self.options.mark_band if self.options.working_type == "MARK_PRICE" else 0.0
            for t in self._resting_priced(pair):
                if t.spec.kind == "market":
                    continue
                level = float(t.spec.price or 0)
                if low * (1 - band) <= level <= high * (1 + band):
                    await self.sync_order(t)
            await self.drain(pair)
            if self._refreshing_balance():
                with contextlib.suppress(Exception):
                    await self._balance_task
        finally:
            self._settling -= 1

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
        await self.stop_market()
        await self.drain()
        self.ledger.flush()

    def busy(self) -> bool:
        """Anything in flight (safe to ask from another thread: a table changing meanwhile counts as busy)."""
        try:
            inflight = any(list(self._inflight.values()))
        except RuntimeError:
            return True
        return inflight or self.ledger.dirty or self._refreshing_balance()

    # -- stops for every position -------------------------------------------------------------------------------

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






def _event_purpose(spec: OrderSpec) -> str:
    if spec.is_entry:
        return "entry"
    if spec.purpose in ("tp1", "tp2", "tp3"):
        return "take_profit"
    if spec.purpose == "flat":
        return "flatten"
    return "stop" if spec.purpose == "stop" else "exit"
