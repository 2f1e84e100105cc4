"""The live engine's order vocabulary: specs from the strategy's broker, notes back to it, and the desk's records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from trader.exchange.models import OrderRequest
from trader.execution.quality import ExecutionTape

ZERO = Decimal(0)
TERMINAL = frozenset({"closed", "canceled", "expired", "rejected"})
PROTECTIVE = frozenset({"stop", "tp1", "tp2", "tp3"})

Kind = Literal["market", "limit", "stop", "take_profit"]


@dataclass
class DeskOptions:
    run: str = ""  # client-id namespace: dry-run and live on one account never share ids
    # Stops and targets trigger on the last price, as the backtest models them; MARK_PRICE resists wicks but no
    # longer matches a backtest bar for bar.
    working_type: Literal["CONTRACT_PRICE", "MARK_PRICE"] = "CONTRACT_PRICE"
    # How a reduce-only Backtrader Limit (a target) goes out: a TAKE_PROFIT_MARKET algo order (no book exposure,
    # taker fill) or a resting reduce-only LIMIT (maker fill at its price).
    take_profit: Literal["take_profit_market", "limit"] = "take_profit_market"
    sync_timeout_s: float = 1.0  # candle gate: wait this long for the stream before asking REST
    mark_band: float = 0.003  # MARK_PRICE triggers: levels this close to a candle's range are checked
    close_unprotected: bool = True  # a stop that cannot be placed: close the position at market
    fallback_stop: float = 0.8  # reconcile_stops without a known stop: stop at entry ∓ fallback_stop / leverage
    protect_attempts: int = 3
    # The market side (trader.execution.market.MarketSettings): order books, liquidity tiers, maintenance windows
    # and the execution optimiser; None: none of them (every order whole at market, no market-side gate).
    market: Any = None


@dataclass(frozen=True)
class OrderSpec:
    """One Backtrader order as the exchange needs it (built by the strategy's broker)."""

    ref: int
    pair: str
    side: Literal["buy", "sell"]
    kind: Kind
    amount: Decimal | None  # None with close_position
    price: Decimal | None  # limit price or trigger price
    reduce_only: bool
    close_position: bool
    purpose: str  # one of order_ids.PURPOSES
    tag: str = ""
    decision_price: Decimal | None = None  # the price the order was decided on (slippage is measured from it)
    post_only: bool = False  # a limit that must rest (GTX): the execution optimiser's maker slices

    @property
    def is_entry(self) -> bool:
        return not (self.reduce_only or self.close_position)


# -- notes for the strategy's broker -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FillNote:
    ref: int | None  # None: a fill of an order that is not ours (liquidation, manual)
    pair: str
    qty: float  # signed
    price: float
    fee: float
    ts_ms: int
    completed: bool  # the exchange says the order is done
    tag: str = ""


@dataclass(frozen=True)
class StatusNote:
    ref: int
    status: Literal["canceled", "expired", "rejected", "margin", "completed"]
    reason: str = ""


@dataclass(frozen=True)
class WalletNote:
    wallet: float
    available: float


Note = FillNote | StatusNote | WalletNote


@dataclass
class Tracked:
    spec: OrderSpec
    trade_id: int | None = None
    cid: str = ""
    request: OrderRequest | None = None
    exchange_id: str | None = None
    engine_order_id: str | None = None  # the order a triggered conditional placed (its fills carry this id)
    status: str = "pending"  # pending | open | closed | canceled | expired | rejected
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    triggered: bool = False
    children: list[Tracked] = field(default_factory=list)
    protected: bool = False  # children handled
    cancel_requested: bool = False
    cancel_when_replaced: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    exec_parent: Tracked | None = None  # a slice of this sliced entry (trader/live/slicing.py)
    tape: ExecutionTape | None = None  # the execution record it fills into (trader/execution/quality.py)

    @property
    def pair(self) -> str:
        return self.spec.pair

    @property
    def is_algo(self) -> bool:
        return self.request.is_algo if self.request is not None else self.spec.kind in ("stop", "take_profit")

    @property
    def live(self) -> bool:
        return self.status in ("pending", "open")


@dataclass
class TradeBook:
    """The running numbers of the trade open on a pair (one per position, flat to flat)."""

    id: int | None
    side: str
    stop_price: Decimal | None = None
    entry_qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_value: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    max_qty: Decimal = ZERO
    exit_reason: str = ""
    opened_ms: int | None = None  # the exchange's time of the first fill


@dataclass(frozen=True)
class StopRepair:
    pair: str
    action: Literal["placed", "closed", "failed"]
    price: Decimal | None
    detail: str = ""
