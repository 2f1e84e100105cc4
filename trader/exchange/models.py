"""Plain result objects the exchange client returns: the engine never handles ccxt's dictionaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

OrderType = Literal["market", "limit", "stop_market", "take_profit_market", "trailing_stop_market"]
ALGO_TYPES = frozenset({"stop_market", "take_profit_market", "trailing_stop_market"})


ZERO_DEC = Decimal(0)
# Binance's order and algo statuses in ccxt's vocabulary (binance-futures.md §6.4), which the engine speaks.
_ORDER_STATUS = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled",
                 "REJECTED": "rejected", "EXPIRED": "expired", "EXPIRED_IN_MATCH": "expired"}
_ALGO_STATUS = {"NEW": "open", "TRIGGERING": "open", "TRIGGERED": "closed", "FINISHED": "closed",
                "CANCELED": "canceled", "REJECTED": "rejected", "EXPIRED": "expired"}


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


@dataclass(frozen=True)
class OrderRequest:
    pair: str
    side: Literal["buy", "sell"]
    type: OrderType
    client_order_id: str
    amount: Decimal | None = None  # None only with close_position
    price: Decimal | None = None  # limit price
    trigger_price: Decimal | None = None  # stop / take-profit trigger; trailing activation price
    callback_rate: Decimal | None = None  # trailing stop, percent
    reduce_only: bool = False
    close_position: bool = False
    time_in_force: Literal["GTC", "IOC", "FOK", "GTX"] = "GTC"
    working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "MARK_PRICE"

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, got {self.side!r}")
        if self.close_position and (self.amount is not None or self.reduce_only):
            raise ValueError("close_position excludes amount and reduce_only (Binance rejects the combination)")
        if not self.close_position and (self.amount is None or self.amount <= 0):
            raise ValueError("amount must be positive")
        if self.type == "limit" and (self.price is None or self.price <= 0):
            raise ValueError("a limit order needs a positive price")
        if self.type in ("stop_market", "take_profit_market") and (self.trigger_price is None or self.trigger_price <= 0):
            raise ValueError(f"a {self.type} order needs a positive trigger price")
        if self.type == "trailing_stop_market" and self.callback_rate is None:
            raise ValueError("a trailing stop needs a callback rate")
        if self.close_position and self.type not in ("stop_market", "take_profit_market"):
            raise ValueError("close_position is only for stop_market and take_profit_market")

    @property
    def is_algo(self) -> bool:
        return self.type in ALGO_TYPES

    def ccxt_args(self, exchange: Any = None) -> tuple[str, str, str, float | None, float | None, dict[str, Any]]:
        """Arguments for ccxt's create_order, in the shapes ccxt 4.5 turns into Binance's (binance-futures.md §6.6)."""
        params: dict[str, Any] = {"clientOrderId": self.client_order_id}
        if self.reduce_only:
            params["reduceOnly"] = True
        amount = float(self.amount) if self.amount is not None else None
        price = float(self.price) if self.price is not None else None
        if self.type == "market":
            return self.pair, "market", self.side, amount, None, params
        if self.type == "limit":
            if self.time_in_force == "GTX":
                params["postOnly"] = True
            else:
                params["timeInForce"] = self.time_in_force
            return self.pair, "limit", self.side, amount, price, params
        params["workingType"] = self.working_type
        if self.type == "trailing_stop_market":
            params["trailingPercent"] = float(self.callback_rate)
            if self.trigger_price is not None:
                params["trailingTriggerPrice"] = float(self.trigger_price)
            return self.pair, "market", self.side, amount, None, params
        params["stopPrice"] = float(self.trigger_price)
        if self.close_position:
            params["closePosition"] = True
        return self.pair, self.type.upper(), self.side, amount, None, params


@dataclass(frozen=True)
class OrderState:
    id: str
    client_order_id: str
    pair: str
    side: str
    type: str
    status: str  # open | closed | canceled | expired | rejected
    amount: Decimal | None
    filled: Decimal
    average: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    is_algo: bool
    timestamp_ms: int | None
    exchange_type: str = ""  # Binance's own type: STOP_MARKET, TAKE_PROFIT_MARKET, LIMIT, ... (ccxt folds some)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_ccxt(cls, order: dict[str, Any], *, is_algo: bool) -> OrderState:
        info = order.get("info") or {}
        native = info.get("orderType") or info.get("type") or info.get("o") or order.get("type") or ""
        return cls(
            id=str(order.get("id")),
            client_order_id=str(order.get("clientOrderId") or ""),
            pair=str(order.get("symbol")),
            side=str(order.get("side")),
            type=str(order.get("type")),
            status=str(order.get("status")),
            amount=_dec(order.get("amount")),
            filled=_dec(order.get("filled")) or Decimal(0),
            average=_dec(order.get("average")),
            price=_dec(order.get("price")),
            trigger_price=_dec(order.get("triggerPrice")),
            reduce_only=bool(order.get("reduceOnly")),
            is_algo=is_algo,
            timestamp_ms=order.get("timestamp"),
            exchange_type=str(native).upper(),
            raw=info,
        )

    @classmethod
    def from_user_event(cls, event: dict[str, Any], pair: str) -> OrderState:
        """An ``ORDER_TRADE_UPDATE`` or ``ALGO_UPDATE`` event of the user-data stream (binance-futures.md §10.2),
        read straight from Binance's fields: ``raw`` keeps them (``l``, ``L``, ``n``, ``m``, ``x``, ``T``, ``t``)
        for the fill arithmetic."""
        o = event.get("o") or {}
        if event.get("e") == "ALGO_UPDATE":
            native = str(o.get("o") or "")
            return cls(
                id=str(o.get("aid")), client_order_id=str(o.get("caid") or ""), pair=pair,
                side=str(o.get("S") or "").lower(), type=native.lower(),
                status=_ALGO_STATUS.get(str(o.get("X") or ""), "open"), amount=_dec(o.get("q")),
                filled=ZERO_DEC, average=None, price=_dec(o.get("p")), trigger_price=_dec(o.get("tp")),
                reduce_only=bool(o.get("R")), is_algo=True, timestamp_ms=_int(event.get("T") or event.get("E")),
                exchange_type=native.upper(), raw=dict(o),
            )
        native = str(o.get("ot") or o.get("o") or "")
        average = _dec(o.get("ap"))
        return cls(
            id=str(o.get("i")), client_order_id=str(o.get("c") or ""), pair=pair,
            side=str(o.get("S") or "").lower(), type=str(o.get("o") or "").lower(),
            status=_ORDER_STATUS.get(str(o.get("X") or ""), "open"), amount=_dec(o.get("q")),
            filled=_dec(o.get("z")) or ZERO_DEC, average=average if average else None,
            price=_dec(o.get("p")) or None, trigger_price=_dec(o.get("sp")) or None,
            reduce_only=bool(o.get("R")), is_algo=False, timestamp_ms=_int(o.get("T") or event.get("T")),
            exchange_type=native.upper(), raw=dict(o),
        )

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def is_stop(self) -> bool:
        return self.exchange_type in ("STOP_MARKET", "STOP", "TRAILING_STOP_MARKET")


@dataclass(frozen=True)
class UserTrade:
    """One fill from the account's trade list (GET /fapi/v1/userTrades): the exchange's own record of what
    executed, at what price and fee. ``realized_pnl`` is Binance's, gross of the fee."""

    pair: str
    id: str
    order_id: str
    side: str  # buy | sell
    price: Decimal
    qty: Decimal
    fee: Decimal
    realized_pnl: Decimal
    maker: bool
    time_ms: int

    @classmethod
    def from_api(cls, pair: str, row: dict[str, Any]) -> UserTrade:
        return cls(pair=pair, id=str(row["id"]), order_id=str(row["orderId"]), side=str(row["side"]).lower(),
                   price=Decimal(str(row["price"])), qty=Decimal(str(row["qty"])),
                   fee=Decimal(str(row.get("commission") or 0)), realized_pnl=Decimal(str(row.get("realizedPnl") or 0)),
                   maker=bool(row.get("maker")), time_ms=int(row["time"]))


@dataclass(frozen=True)
class Position:
    pair: str
    contracts: Decimal  # signed: long > 0
    entry_price: Decimal
    mark_price: Decimal | None
    liquidation_price: Decimal | None
    unrealized_pnl: Decimal
    leverage: int | None
    notional: Decimal
    maintenance_margin: Decimal | None

    @property
    def side(self) -> str:
        return "long" if self.contracts > 0 else "short"

    @classmethod
    def from_ccxt(cls, pos: dict[str, Any]) -> Position:
        size = _dec(pos.get("contracts")) or Decimal(0)
        if pos.get("side") == "short":
            size = -size
        leverage = pos.get("leverage")
        return cls(
            pair=str(pos.get("symbol")),
            contracts=size,
            entry_price=_dec(pos.get("entryPrice")) or Decimal(0),
            mark_price=_dec(pos.get("markPrice")),
            liquidation_price=_dec(pos.get("liquidationPrice")),
            unrealized_pnl=_dec(pos.get("unrealizedPnl")) or Decimal(0),
            leverage=int(leverage) if leverage else None,
            notional=abs(_dec(pos.get("notional")) or Decimal(0)),
            maintenance_margin=_dec(pos.get("maintenanceMargin")),
        )


@dataclass(frozen=True)
class Balance:
    wallet: Decimal
    available: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    maintenance_margin: Decimal


@dataclass
class StartupReport:
    ok: bool = False
    balance: Balance | None = None
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    api_restrictions: dict[str, Any] = field(default_factory=dict)
