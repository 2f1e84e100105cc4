"""Plain result objects the service returns. Front ends format them; nothing here knows about Telegram."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class PositionView:
    pair: str
    side: str  # long | short
    amount: Decimal  # base units, positive
    entry_price: Decimal
    mark_price: Decimal | None
    liquidation_price: Decimal | None
    liquidation_distance: Decimal | None  # |mark − liq| / mark
    unrealized_pnl: Decimal
    notional: Decimal
    leverage: int | None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class BalanceView:
    wallet: Decimal
    available: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    maintenance_margin: Decimal

    @property
    def margin_ratio(self) -> Decimal | None:
        return self.maintenance_margin / self.margin_balance if self.margin_balance > 0 else None


@dataclass(frozen=True)
class FlattenFill:
    pair: str
    side: str  # the position side that was closed
    amount: Decimal
    average_price: Decimal | None
    client_order_ids: tuple[str, ...]
    estimated_pnl: Decimal | None


@dataclass(frozen=True)
class Leftover:
    pair: str
    amount: Decimal  # signed, still open
    reason: str


@dataclass
class FlattenReport:
    started: dt.datetime
    finished: dt.datetime | None = None
    cancelled_orders: int = 0
    closed: list[FlattenFill] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    joined: bool = False  # this caller joined a flatten that was already running
    verified: bool = False  # a successful position read after the last close: the leftovers list is the truth
    resumed_from: dict[str, object] | None = None  # the journal of an interrupted flatten this one completed
    unexplained: list[str] = field(default_factory=list)  # pairs closed in the ledger with the exit unknown
    ledger_ok: bool | None = None  # the ledger check after the flatten
    ledger_summary: str = ""

    @property
    def flat(self) -> bool:
        return self.verified and not self.leftovers


@dataclass(frozen=True)
class LeverageChange:
    old: int
    new: int
    applied: tuple[str, ...]  # pairs set on the exchange


@dataclass(frozen=True)
class WhitelistView:
    pairs: tuple[str, ...]
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionView:
    """/execution: how orders were executed per pair, and the market side's state in the running engine."""

    days: int
    dry_run: bool
    pairs: tuple[Any, ...]  # trader.execution.quality.PairQuality, busiest first
    running: bool
    market: dict[str, Any] | None  # MarketWatch.snapshot(): liquidity tiers, maintenance; None when not running
