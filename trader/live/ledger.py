"""What the live broker writes down: Trade, Order and Fill rows, and the numbers that make client ids unique.

An order's rows are made durable *before* the order is sent, under its deterministic client id, so a restart finds
every order it may have sent and resolves it by that id (``ExchangeClient.find_order``) instead of sending again.
That write sits between a candle and its order, so it takes the shortest path there is. The live engine's ledger
(``journal=True``, a SQLite file) appends the rows as one line to the order journal
(trader/persistence/order_journal.py) and inserts them with the next flush, once the orders are out; the trade
id an entry's client id carries comes from ids reserved beforehand (``SqliteWriteAhead.reserve_ids``), so nothing
else can take it meanwhile. Without the journal (another ledger, PostgreSQL, a database that missed migration
0005) the rows are committed before the send on a connection kept for them, on SQLite the DB-API connection with
statements compiled once (trader/persistence/write_ahead.py). That connection never checkpoints the WAL (a
checkpoint syncs the file: milliseconds); the deferred writes below do, when no order is on its way. What follows
a fill (order status, fill rows, the trade's running numbers) is queued and written by ``flush`` once the
protective orders are out: the exchange stays the truth for fills, and recovery re-reads it after a crash.
Without a database (tests, benches) the ledger keeps the same bookkeeping in memory and starts trade ids from the
clock, so two runs on one account never reuse an id.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from trader.execution.quality import ExecutionRecord
from trader.persistence.database import transaction
from trader.persistence.models import Execution, Fill, Order, Trade
from trader.persistence.order_journal import JournalBusy, OrderJournal, decode_row, encode
from trader.persistence.write_ahead import SqliteWriteAhead, WriteAhead, core_insert, open_write_ahead
from trader.risk.book import RiskHistory
from trader.security.redaction import guarded_by

log = logging.getLogger(__name__)
ZERO = Decimal(0)
CHECKPOINT_EVERY = 20  # flushes between WAL checkpoints (Ledger._checkpoint): a few hundred pages at most
TRADE_IDS = 8  # trade ids reserved at a time for journalled entries; topped up by a flush below half of it
TRADES: Table = Trade.__table__  # type: ignore[assignment]
ORDERS: Table = Order.__table__  # type: ignore[assignment]


def utc_from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


@dataclass(frozen=True)
class OrderRow:
    trade_id: int | None
    cid: str
    pair: str
    type: str
    side: str
    purpose: str
    amount: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    close_position: bool


@dataclass
class OpenTrade:
    id: int
    pair: str
    side: str
    stop_price: Decimal | None
    opened_ms: int | None = None
    amount: Decimal = ZERO  # largest size held
    amount_open: Decimal = ZERO
    open_rate: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    filled_by_cid: dict[str, Decimal] = field(default_factory=dict)  # fills recorded per order of the trade


class Ledger:
    def __init__(self, sessions: sessionmaker[Session] | None = None, *, strategy: str = "", dry_run: bool = True,
                 journal: bool = False):
        self.sessions = sessions
        self.strategy = strategy
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self._seq: dict[tuple[int, str], int] = defaultdict(int)
        self._ids = itertools.count(int(time.time() * 1000) % 10**11)
        self._order_ids: dict[str, int] = {}  # client id -> orders.id
        self._fresh: set[int] = set()  # trades created by this process: their sequences start at 0
        self._zero_seq = int(time.time() * 10) % 10**9
        self._pending: list[Callable[[Session], None]] = []
        self._external: set[str] = set()
        self.executions: list[ExecutionRecord] = []  # this run's, also without a database (tests, benches)
        self._wal_lock = threading.Lock()
        self._wal_conn: WriteAhead | None = None
        self._flushes = 0
        self._want_journal = journal
        self._journal: OrderJournal | None = None
        self._unapplied: list[dict[str, dict[str, object] | None]] = []  # journalled, not yet in the database
        self._journalled: set[str] = set()  # their client ids
        self._trade_ids: list[int] = []  # reserved, unused (popped from the end)

    def _write_ahead(self) -> WriteAhead | None:
        """The connection the write-ahead inserts use (None: go through a session, e.g. an in-memory SQLite
        database whose single shared connection the sessions hold)."""
        if self._wal_conn is not None or self.sessions is None:
            return self._wal_conn
        engine = self.sessions.kw.get("bind")
        if not isinstance(engine, Engine) or isinstance(engine.pool, StaticPool):
            return None
        self._wal_conn = open_write_ahead(engine)
        return self._wal_conn

    def open_journal(self) -> bool:
        """Take the order journal (``journal=True`` on a SQLite file whose trade ids are never reused), read what a
        crash left in it for the next flush, and reserve the first trade ids. False: orders write ahead to the
        database, as before the journal. Called at the start (``open_trades``), off the way to any order."""
        with self._wal_lock:
            if self._journal is not None:
                return True
            if not self._want_journal:
                return False
            self._want_journal = False  # one attempt: a refusal is logged once
            wa = self._write_ahead()
            if not isinstance(wa, SqliteWriteAhead):
                return False
            database = self.sessions.kw["bind"].url.database  # type: ignore[union-attr]
            path = Path(database).with_name(Path(database).name + "-orders.journal")
            try:
                journal = OrderJournal(path)
            except JournalBusy as exc:
                log.warning("ledger: %s; orders write ahead to the database instead", exc)
                return False
            try:
                left = journal.entries()
                self._check_leftovers(left, path)
                # Above the ids the leftovers carry: a ledger restored from a backup older than them is behind.
                above = max((int(e["trade"]["id"]) for e in left if e.get("trade")), default=0)  # type: ignore[index]
                if not self._reserve_trade_ids(wa, above):
                    log.warning("ledger: the trades table can reuse ids (migration 0005 missing); orders write "
                                "ahead to the database instead of the journal")
                    journal.close()
                    return False
            except Exception:
                journal.close()
                raise
            self._unapplied = left
            self._journalled = {e["order"]["client_order_id"] for e in left if e.get("order")}  # type: ignore[index]
            if left:
                log.warning("ledger: %d order(s) in the journal from before the start; writing them to the database",
                            len(left))
            self._journal = journal
            return True

    def _check_leftovers(self, left: list[dict[str, Any]], path: Path) -> None:
        """A journalled trade whose id the database already holds must be that trade (a crash between the commit
        and the journal's emptying); a different one means the journal was written against another database (a
        restored backup from elsewhere, a copied directory), and its orders would be filed under the wrong trade."""
        if not left:
            return
        trades = [decode_row(TRADES, e["trade"]) for e in left if e.get("trade")]
        orders = [decode_row(ORDERS, e["order"]) for e in left if e.get("order")]
        advice = ("to start anyway move the file aside, then check the ledger against the exchange with "
                  "`bsmart reconcile`")
        with transaction(self.sessions) as s:  # type: ignore[arg-type]
            journalled = {values["id"] for values in trades}
            for values in orders:
                tid = values.get("trade_id")
                if tid is not None and tid not in journalled and s.get(Trade, tid) is None:
                    raise ValueError(f"the order journal {path} does not belong to this ledger: order "
                                     f"{values['client_order_id']} is for trade #{tid}, which the database does "
                                     f"not hold; {advice}")
            for values in trades:
                held = s.get(Trade, values["id"])
                if held is None:
                    continue
                ours = (values["pair"], values["side"], values["open_date"])
                theirs = (held.pair, held.side, held.open_date)
                if ours != theirs:
                    raise ValueError(
                        f"the order journal {path} does not belong to this ledger: trade #{values['id']} is "
                        f"{theirs[0]} {theirs[1]} opened {theirs[2]:%Y-%m-%d %H:%M:%S} in the database and "
                        f"{ours[0]} {ours[1]} opened {ours[2]:%Y-%m-%d %H:%M:%S} in the journal; {advice}")

    def close(self) -> None:
        """Give the write-ahead connection back (the engine's pool keeps or closes it) and let go of the journal
        (what it still holds is applied by the next start)."""
        with self._wal_lock:
            if self._wal_conn is not None:
                self._wal_conn.close()
                self._wal_conn = None
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _journal_append(self, trade: dict[str, object] | None, order: dict[str, object] | None) -> None:
        """Called with ``_wal_lock`` held and the journal open."""
        assert self._journal is not None
        entry = {"trade": trade, "order": order}
        engine = self.sessions.kw["bind"]  # type: ignore[union-attr]
        self._journal.append(encode(entry, guarded_by(engine)))
        self._unapplied.append(entry)
        if order is not None:
            self._journalled.add(str(order["client_order_id"]))

    def _apply_journal(self, s: Session) -> None:
        """Insert the journalled rows the database does not have yet (a start after a crash may find some of them
        there already: the crash fell between their commit and the journal's emptying)."""
        conn = s.connection()
        for entry in self._unapplied:
            trade, order = entry.get("trade"), entry.get("order")
            if trade is not None:
                values = decode_row(TRADES, trade)
                if s.get(Trade, values["id"]) is None:
                    core_insert(conn, TRADES, values)
            if order is not None:
                values = decode_row(ORDERS, order)
                cid = values["client_order_id"]
                existing = s.scalar(select(Order.id).where(Order.client_order_id == cid))
                self._order_ids[cid] = existing if existing is not None else core_insert(conn, ORDERS, values)

    # -- ids ----------------------------------------------------------------------------------------------------
    def next_seq(self, trade_id: int, purpose: str) -> int:
        """The next unused sequence number of ``purpose`` orders in a trade (stops moved, exits retried).

        Trade 0 gathers orders for positions the bot did not open; its numbers start from the clock so that a
        restart never reuses one."""
        with self._lock:
            if trade_id == 0:
                self._zero_seq += 1
                return self._zero_seq
            key = (trade_id, purpose)
            if key not in self._seq and self.sessions is not None and trade_id not in self._fresh:
                with transaction(self.sessions) as s:
                    n = s.scalar(select(func.count(Order.id)).where(Order.trade_id == trade_id,
                                                                     Order.purpose == purpose))
                self._seq[key] = int(n or 0)
            n = self._seq[key]
            self._seq[key] = n + 1
            return n

    # -- trades ---------------------------------------------------------------------------------------------------
    def new_trade(self, pair: str, side: str, leverage: int, enter_tag: str = "", stop_price: Decimal | None = None,
                  time_ms: int | None = None, first_order: Callable[[int], OrderRow] | None = None) -> int:
        """A new trade row, and with ``first_order`` (built from the new id) its entry order in the same
        transaction: one commit on the way from a candle to the exchange."""
        if self.sessions is None:
            tid = next(self._ids)
            self._fresh.add(tid)
            if first_order is not None:
                first_order(tid)
            return tid
        now = utc_from_ms(time_ms) if time_ms else dt.datetime.now(dt.timezone.utc)
        # Every column, so the row is the same whichever connection writes it (trader/persistence/write_ahead.py).
        values = dict(pair=pair, side=side, leverage=leverage, amount=ZERO, amount_open=ZERO, stake=ZERO,
                      open_rate=ZERO, close_rate=None, stop_price=stop_price, fees=ZERO, funding=ZERO,
                      realized_pnl=ZERO, status="open", strategy=self.strategy, enter_tag=enter_tag[:64],
                      exit_reason=None, dry_run=self.dry_run, open_date=now, close_date=None, backtest_run_id=None)
        with self._wal_lock:
            if self._journal is not None:
                tid = self._trade_id()
                values["id"] = tid
                with self._lock:
                    self._fresh.add(tid)
                row = first_order(tid) if first_order is not None else None
                self._journal_append(values, self._order_values(row) if row is not None else None)
                return tid
            wa = self._write_ahead()
            if wa is not None:
                with wa.transaction():
                    return self._insert_trade(wa.insert, values, first_order)
            with self.sessions() as s, s.begin():
                conn = s.connection()
                return self._insert_trade(lambda t, v: core_insert(conn, t, v), values, first_order)

    def _reserve_trade_ids(self, wa: SqliteWriteAhead, above: int = 0) -> bool:
        """``TRADE_IDS`` more trade ids in the pool, used after the ones it holds, all above ``above``; False: the
        table can reuse ids."""
        ids = wa.reserve_ids(TRADES, TRADE_IDS, above)
        if ids is None:
            return False
        self._trade_ids[:0] = reversed(ids)  # popped from the end: the lower ids already held go first
        return True

    def _trade_id(self) -> int:
        """A reserved trade id; when a burst of entries used them all, more at once (a commit on this entry's way)."""
        if not self._trade_ids:
            wa = self._write_ahead()
            assert isinstance(wa, SqliteWriteAhead)
            reserved = self._reserve_trade_ids(wa)
            assert reserved  # checked when the journal opened
        return self._trade_ids.pop()

    def _insert_trade(self, ins: Callable[[Table, dict[str, object]], int], values: dict[str, object],
                      first_order: Callable[[int], OrderRow] | None) -> int:
        tid = ins(TRADES, values)
        with self._lock:
            self._fresh.add(tid)
        if first_order is not None:
            row = first_order(tid)
            self._order_ids[row.cid] = ins(ORDERS, self._order_values(row))
        return tid

    def update_trade(self, trade_id: int, **fields: object) -> None:
        if self.sessions is None:
            return

        def write(s: Session) -> None:
            t = s.get(Trade, trade_id)
            if t is not None:
                for k, v in fields.items():
                    setattr(t, k, v)
        self._pending.append(write)

    def open_trades(self) -> dict[str, OpenTrade]:
        """Open trades by pair (the newest wins if the database holds more than one for a pair)."""
        if self.sessions is None:
            return {}
        self.open_journal()
        self.flush()
        with transaction(self.sessions) as s:
            rows = s.scalars(select(Trade).where(Trade.status == "open", Trade.backtest_run_id.is_(None))
                             .order_by(Trade.id)).all()
            out: dict[str, OpenTrade] = {}
            for t in rows:
                filled: dict[str, Decimal] = defaultdict(lambda: ZERO)
                for cid, amount in s.execute(select(Order.client_order_id, Fill.amount)
                                             .join(Fill, Fill.order_id == Order.id).where(Fill.trade_id == t.id)):
                    filled[cid] += amount
                out[t.pair] = OpenTrade(t.id, t.pair, t.side, t.stop_price,
                                        int(t.open_date.timestamp() * 1000) if t.open_date else None,
                                        t.amount or ZERO, t.amount_open or ZERO, t.open_rate or ZERO,
                                        t.realized_pnl or ZERO, t.fees or ZERO, dict(filled))
            return out

    def risk_history(self, now_ms: int, closed_days: int = 30, entry_days: int = 7) -> RiskHistory:
        """The risk rules' memory of this account (trader.risk.book.RiskHistory): closed trades of the last
        ``closed_days`` (an exit unknown has no P&L and is left out) and entry times of the last ``entry_days``,
        on the exchange's clock the ledger keeps."""
        if self.sessions is None:
            return RiskHistory()
        self.flush()
        closed_since = utc_from_ms(now_ms - closed_days * 86_400_000)
        entries_since = utc_from_ms(now_ms - entry_days * 86_400_000)
        live = Trade.backtest_run_id.is_(None)
        with transaction(self.sessions) as s:
            rows = s.execute(select(Trade.close_date, Trade.realized_pnl, Trade.fees, Trade.funding)
                             .where(live, Trade.status == "closed", Trade.close_date >= closed_since)
                             .order_by(Trade.close_date, Trade.id)).all()
            opens = s.scalars(select(Trade.open_date).where(live, Trade.status != "cancelled",
                                                            Trade.open_date >= entries_since)).all()
        closed = tuple((int(c.timestamp() * 1000), float(pnl or ZERO), float((pnl or ZERO) - (fees or ZERO)
                                                                            + (funding or ZERO)))
                       for c, pnl, fees, funding in rows)
        return RiskHistory(closed, tuple(int(o.timestamp() * 1000) for o in opens))

    # -- orders and fills ---------------------------------------------------------------------------------------
    @staticmethod
    def _order_values(row: OrderRow) -> dict[str, object]:
        now = dt.datetime.now(dt.timezone.utc)
        return dict(trade_id=row.trade_id, client_order_id=row.cid, exchange_order_id=None, pair=row.pair,
                    type=row.type.upper(), side=row.side, reduce_only=row.reduce_only,
                    close_position=row.close_position, amount=row.amount, price=row.price, stop_price=row.stop_price,
                    filled=ZERO, average=None, status="new", purpose=row.purpose, created_at=now, updated_at=now)

    def record_order(self, row: OrderRow) -> None:
        """Durable before the order is sent: journalled, or committed (see the module docstring)."""
        if self.sessions is None or row.cid in self._order_ids or row.cid in self._journalled:
            return
        try:
            with self._wal_lock:
                if self._journal is not None:
                    self._journal_append(None, self._order_values(row))
                    return
                wa = self._write_ahead()
                if wa is not None:
                    with wa.transaction():
                        self._order_ids[row.cid] = wa.insert(ORDERS, self._order_values(row))
                else:
                    with self.sessions() as s, s.begin():
                        self._order_ids[row.cid] = core_insert(s.connection(), ORDERS, self._order_values(row))
        except IntegrityError:  # a restart re-placing under the same id: the row is there already
            with transaction(self.sessions) as s:
                existing = s.scalar(select(Order.id).where(Order.client_order_id == row.cid))
                if existing is not None:
                    self._order_ids[row.cid] = existing

    def update_order(self, cid: str, *, status: str, exchange_id: str | None = None, filled: Decimal | None = None,
                     average: Decimal | None = None) -> None:
        if self.sessions is None:
            return

        def write(s: Session) -> None:
            o = s.scalar(select(Order).where(Order.client_order_id == cid))
            if o is None:
                return
            o.status = status
            if exchange_id:
                o.exchange_order_id = exchange_id
            if filled is not None:
                o.filled = filled
            if average is not None:
                o.average = average
        self._pending.append(write)

    def record_external_order(self, trade_id: int | None, cid: str, pair: str, side: str, purpose: str,
                              exchange_id: str) -> None:
        """An order the engine did not send (flatten, liquidation, manual) that filled against our position: its
        row lets the fills be stored and checked against the exchange's like any other."""
        if self.sessions is None or cid in self._order_ids or cid in self._external:
            return
        self._external.add(cid)
        now = dt.datetime.now(dt.timezone.utc)

        def write(s: Session) -> None:
            if s.scalar(select(Order.id).where(Order.client_order_id == cid)) is not None:
                return
            s.add(Order(trade_id=trade_id, client_order_id=cid[:36], exchange_order_id=exchange_id[:32], pair=pair,
                        type="MARKET", side=side, reduce_only=True, close_position=False, amount=None, price=None,
                        stop_price=None, filled=ZERO, status="filled", purpose=purpose[:16], created_at=now,
                        updated_at=now))
        self._pending.append(write)

    def record_fill(self, cid: str, trade_id: int | None, pair: str, key: str, side: str, price: Decimal,
                    amount: Decimal, fee: Decimal, maker: bool, realized_pnl: Decimal, time_ms: int,
                    slippage_bp: float | None = None) -> None:
        if self.sessions is None:
            return

        def write(s: Session) -> None:
            order_id = self._order_ids.get(cid) or s.scalar(select(Order.id).where(Order.client_order_id == cid))
            if order_id is None:
                return  # not ours (liquidation, manual): the trade row still gets the numbers
            if s.scalar(select(Fill.id).where(Fill.pair == pair, Fill.exchange_trade_id == key)) is not None:
                return
            s.add(Fill(order_id=order_id, trade_id=trade_id, pair=pair, exchange_trade_id=key, side=side,
                       price=price, amount=amount, fee=fee, is_maker=maker, realized_pnl=realized_pnl,
                       time=utc_from_ms(time_ms), slippage_bp=slippage_bp))
        self._pending.append(write)

    def record_execution(self, r: ExecutionRecord) -> None:
        """How one execution went (trader/execution/quality.py); written with the fills' bookkeeping."""
        self.executions.append(r)
        if len(self.executions) > 1000:
            del self.executions[:500]
        if self.sessions is None:
            return

        def write(s: Session) -> None:
            s.add(Execution(time=utc_from_ms(r.time_ms), trade_id=r.trade_id or None, pair=r.pair, side=r.side,
                            purpose=r.purpose[:16], style=r.style[:12], slices=r.slices, planned=r.planned,
                            filled=r.filled, decision_price=r.decision_price, average=r.average,
                            slippage_bp=r.slippage_bp, maker_share=r.maker_share, time_to_fill_ms=r.time_to_fill_ms,
                            fallback=r.fallback, client_order_ids=list(r.client_ids)[:50], dry_run=self.dry_run))
        self._pending.append(write)

    @property
    def dirty(self) -> bool:
        return bool(self._pending or self._unapplied)

    def flush(self) -> None:
        """Write the journalled rows, then the queued bookkeeping in one transaction (in order).

        The journal's rows commit on their own first: if they fail they stay in the journal (and the queue waits)
        for the next flush or start; the bookkeeping that follows them refers to them."""
        if self.sessions is None or not (self._pending or self._unapplied):
            return
        with self._wal_lock:
            wa = self._write_ahead()
            # A SQLite file: on the write-ahead inserts' own connection, so that their page cache stays valid
            # (trader/persistence/write_ahead.py). Anything else: a pooled session, as every other writer.
            shared = wa.conn if isinstance(wa, SqliteWriteAhead) else None
            self._flushes += 1
            if self._flushes % CHECKPOINT_EVERY == 0:
                self._checkpoint(shared)
            if self._unapplied:
                with self.sessions(bind=shared) if shared is not None else self.sessions() as s, s.begin():
                    self._apply_journal(s)
                self._unapplied = []
                self._journalled.clear()
                if self._journal is not None:
                    self._journal.clear()
            low = len(self._trade_ids) < TRADE_IDS // 2
            if self._journal is not None and low and isinstance(wa, SqliteWriteAhead):
                self._reserve_trade_ids(wa)
            pending, self._pending = self._pending, []
            if not pending:
                return
            with self.sessions(bind=shared) if shared is not None else self.sessions() as s, s.begin():
                for write in pending:
                    write(s)
                    s.flush()

    def _checkpoint(self, conn: Connection | None) -> None:
        """Copy a SQLite file's WAL into the database, just before a flush's writes.

        The first write after a complete checkpoint starts the WAL over and syncs its header to disk (synchronous
        NORMAL): if SQLite checkpointed on its own (at a commit that took the WAL past 1000 pages), that write could
        be the next order's write-ahead row, with a sync on the way from a candle to the exchange (measured:
        commit p99 0.35 ms with SQLite's own checkpoints, 0.12 ms without). Checkpointing here, every
        ``CHECKPOINT_EVERY`` flushes, keeps the WAL short of SQLite's threshold, and the restart falls on this
        flush's own writes. A reader holding an older snapshot only makes the checkpoint partial; a checkpoint that
        fails (a locked file) is said in the log and leaves the flush alone."""
        if conn is None:  # not a SQLite file
            return
        try:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")  # outside the flush's transaction
            conn.commit()
        except SQLAlchemyError as exc:
            conn.rollback()  # the flush's transaction starts on this connection next
            log.warning("ledger: WAL checkpoint failed (%s); SQLite checkpoints on its own", exc)
