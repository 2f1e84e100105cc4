"""The database schema. Alembic migrations under ``migrations/versions`` must describe exactly these tables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from trader.persistence.types import Money, UTCDateTime, utcnow

# Named constraints so that Alembic batch migrations on SQLite can alter them later.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Trade(Base):
    """One position from entry to final exit (partial exits are its orders and fills)."""

    __tablename__ = "trades"
    # Ids never reused, so the live ledger can reserve them before an entry is sent (migration 0005).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(5))  # "long" | "short"
    leverage: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)  # base-asset quantity at entry
    amount_open: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # still open after partial exits
    stake: Mapped[Decimal] = mapped_column(Money)  # initial margin posted
    open_rate: Mapped[Decimal] = mapped_column(Money)
    close_rate: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    # Net result = realized_pnl − fees + funding.
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # commissions paid, positive
    funding: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # signed: negative when paid
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # price PnL of closed amounts, gross
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)  # open | closed | cancelled
    strategy: Mapped[str] = mapped_column(String(64), default="")
    enter_tag: Mapped[str] = mapped_column(String(64), default="")
    exit_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    open_date: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    close_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    backtest_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("backtest_runs.id", ondelete="CASCADE"), nullable=True, index=True
    )

    orders: Mapped[list[Order]] = relationship(back_populates="trade", order_by="Order.id")
    fills: Mapped[list[Fill]] = relationship(back_populates="trade", order_by="Fill.id")
    funding_payments: Mapped[list[FundingPayment]] = relationship(back_populates="trade")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id"), nullable=True, index=True)
    # Deterministic and unique: a retried create is resolved by querying this id, never by sending twice.
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    pair: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(32))  # MARKET, LIMIT, STOP_MARKET, TAKE_PROFIT_MARKET, ...
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    close_position: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    filled: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="entry")  # entry | exit | stop | take_profit
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    trade: Mapped[Trade | None] = relationship(back_populates="orders")
    fills: Mapped[list[Fill]] = relationship(back_populates="order", order_by="Fill.id")


class Fill(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("pair", "exchange_trade_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id"), nullable=True, index=True)
    pair: Mapped[str] = mapped_column(String(32))
    exchange_trade_id: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fee_asset: Mapped[str] = mapped_column(String(12), default="USDT")
    is_maker: Mapped[bool] = mapped_column(Boolean, default=False)
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Against the order's decision price, basis points, positive = worse (trader/execution/quality.py).
    slippage_bp: Mapped[float | None] = mapped_column(Float, nullable=True)

    order: Mapped[Order] = relationship(back_populates="fills")
    trade: Mapped[Trade | None] = relationship(back_populates="fills")


class Execution(Base):
    """One execution (an order, or every slice of a sliced one) and how it went: /execution reads these."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)  # when the order left the desk
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id"), nullable=True, index=True)
    pair: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    purpose: Mapped[str] = mapped_column(String(16))  # entry | exit | stop | take_profit | ...
    style: Mapped[str] = mapped_column(String(12))  # market | post_only | conditional
    slices: Mapped[int] = mapped_column(Integer, default=1)
    planned: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    filled: Mapped[Decimal] = mapped_column(Money)
    decision_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    average: Mapped[Decimal] = mapped_column(Money)
    slippage_bp: Mapped[float | None] = mapped_column(Float, nullable=True)
    maker_share: Mapped[float] = mapped_column(Float, default=0.0)
    time_to_fill_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    client_order_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)


class FundingPayment(Base):
    __tablename__ = "funding_payments"
    __table_args__ = (UniqueConstraint("pair", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id"), nullable=True, index=True)
    pair: Mapped[str] = mapped_column(String(32))
    rate: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # unknown when read from income history
    amount: Mapped[Decimal] = mapped_column(Money)  # signed: negative = paid by us
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    trade: Mapped[Trade | None] = relationship(back_populates="funding_payments")


class AuditEvent(Base):
    """Who did what, from where, and how it ended. Written for every mutating action, refused ones included."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_time", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # telegram | cli | engine | test
    action: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | failed | denied
    detail: Mapped[str] = mapped_column(Text, default="")


class RuntimeState(Base):
    """Values changed at run time (leverage, whitelist, paused/stopped, ...). They win over the config file."""

    __tablename__ = "runtime_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class BacktestRun(Base):
    __tablename__ = "backtest_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    requested_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy: Mapped[str] = mapped_column(String(64))
    pairs: Mapped[list[str]] = mapped_column(JSON)
    timeframe: Mapped[str] = mapped_column(String(8))
    timerange: Mapped[str] = mapped_column(String(40))
    leverage: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | done | failed | cancelled
    error: Mapped[str] = mapped_column(Text, default="")
    result_dir: Mapped[str] = mapped_column(String(255), default="")

    trades: Mapped[list[Trade]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


# --- Telegram bot (issue 7): per-user settings and role grants. Migration 0002. ---------------------------------
# Telegram ids exceed 32 bits, hence BigInteger for user and chat ids.


class BotUserSettings(Base):
    """What a Telegram user chose with /settings: language, daily report time and zone, notification levels."""

    __tablename__ = "bot_user_settings"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str] = mapped_column(String(8))
    report_time: Mapped[str] = mapped_column(String(5))  # HH:MM in the user's zone
    timezone: Mapped[str] = mapped_column(String(64))
    notifications: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # event kind → on | silent | off
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BotRoleGrant(Base):
    """A role granted with /users. Users listed in the config file keep their configured role."""

    __tablename__ = "bot_role_grants"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16))  # viewer | trader | admin
    granted_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
