"""What the live broker writes down: Trade, Order and Fill rows, and the numbers that make client ids unique.

An order's row is committed *before* the order is sent, under its deterministic client id, so a restart finds
every order it may have sent and resolves it by that id (``ExchangeClient.find_order``) instead of sending again.
Without a database (tests, benches) the ledger keeps the same bookkeeping in memory and starts trade ids from the
clock, so two runs on one account never reuse an id.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from trader.persistence.database import transaction
from trader.persistence.models import Fill, Order, Trade

ZERO = Decimal(0)


def utc_from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


@dataclass
class OpenTrade:
    id: int
    pair: str
    side: str
    stop_price: Decimal | None


class Ledger:
    def __init__(self, sessions: sessionmaker[Session] | None = None, *, strategy: str = "", dry_run: bool = True):
        self.sessions = sessions
        self.strategy = strategy
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self._seq: dict[tuple[int, str], int] = defaultdict(int)
        self._ids = itertools.count(int(time.time() * 1000) % 10**11)
        self._order_ids: dict[str, int] = {}  # client id -> orders.id

    # -- ids ----------------------------------------------------------------------------------------------------
    def next_seq(self, trade_id: int, purpose: str) -> int:
        """The next unused sequence number of ``purpose`` orders in a trade (stops moved, exits retried)."""
        with self._lock:
            key = (trade_id, purpose)
            if key not in self._seq and self.sessions is not None:
                with transaction(self.sessions) as s:
                    n = s.scalar(select(func.count(Order.id)).where(Order.trade_id == trade_id,
                                                                     Order.purpose == purpose))
                self._seq[key] = int(n or 0)
            n = self._seq[key]
            self._seq[key] = n + 1
            return n

    # -- trades -------------------------------------------------------------------------------------------------
    def new_trade(self, pair: str, side: str, leverage: int, enter_tag: str = "", stop_price: Decimal | None = None,
                  time_ms: int | None = None) -> int:
        if self.sessions is None:
            return next(self._ids)
        with transaction(self.sessions) as s:
            t = Trade(pair=pair, side=side, leverage=leverage, amount=ZERO, amount_open=ZERO, stake=ZERO,
                      open_rate=ZERO, stop_price=stop_price, strategy=self.strategy, enter_tag=enter_tag,
                      dry_run=self.dry_run, status="open",
                      open_date=utc_from_ms(time_ms) if time_ms else dt.datetime.now(dt.timezone.utc))
            s.add(t)
            s.flush()
            return int(t.id)

    def update_trade(self, trade_id: int, **fields: object) -> None:
        if self.sessions is None:
            return
        with transaction(self.sessions) as s:
            t = s.get(Trade, trade_id)
            if t is not None:
                for k, v in fields.items():
                    setattr(t, k, v)

    def open_trades(self) -> dict[str, OpenTrade]:
        """Open trades by pair (the newest wins if the database holds more than one for a pair)."""
        if self.sessions is None:
            return {}
        with transaction(self.sessions) as s:
            rows = s.scalars(select(Trade).where(Trade.status == "open", Trade.backtest_run_id.is_(None))
                             .order_by(Trade.id)).all()
            return {t.pair: OpenTrade(t.id, t.pair, t.side, t.stop_price) for t in rows}

    # -- orders and fills ---------------------------------------------------------------------------------------
    def record_order(self, trade_id: int | None, cid: str, pair: str, type_: str, side: str, purpose: str, *,
                     amount: Decimal | None, price: Decimal | None, stop_price: Decimal | None,
                     reduce_only: bool, close_position: bool) -> None:
        if self.sessions is None:
            return
        with transaction(self.sessions) as s:
            existing = s.scalar(select(Order).where(Order.client_order_id == cid))
            if existing is not None:  # a restart re-placing under the same id
                self._order_ids[cid] = existing.id
                return
            o = Order(trade_id=trade_id, client_order_id=cid, pair=pair, type=type_.upper(), side=side,
                      reduce_only=reduce_only, close_position=close_position, amount=amount, price=price,
                      stop_price=stop_price, purpose=purpose, status="new")
            s.add(o)
            s.flush()
            self._order_ids[cid] = o.id

    def update_order(self, cid: str, *, status: str, exchange_id: str | None = None, filled: Decimal | None = None,
                     average: Decimal | None = None) -> None:
        if self.sessions is None:
            return
        with transaction(self.sessions) as s:
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

    def record_fill(self, cid: str, trade_id: int | None, pair: str, key: str, side: str, price: Decimal,
                    amount: Decimal, fee: Decimal, maker: bool, realized_pnl: Decimal, time_ms: int) -> None:
        if self.sessions is None:
            return
        with transaction(self.sessions) as s:
            order_id = self._order_ids.get(cid) or s.scalar(select(Order.id).where(Order.client_order_id == cid))
            if order_id is None:
                return  # not ours (liquidation, manual): the trade row still gets the numbers
            dup = s.scalar(select(Fill.id).where(Fill.pair == pair, Fill.exchange_trade_id == key))
            if dup is not None:
                return
            s.add(Fill(order_id=order_id, trade_id=trade_id, pair=pair, exchange_trade_id=key, side=side,
                       price=price, amount=amount, fee=fee, is_maker=maker, realized_pnl=realized_pnl,
                       time=utc_from_ms(time_ms)))
