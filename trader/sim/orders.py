"""Order, algo order, trade and income records and their Binance JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
ALGO_OPEN = ("NEW", "TRIGGERING")


def fs(d: Decimal | None) -> str:
    """Binance prints numbers as plain decimal strings, never in exponent form."""
    return "0" if d is None else format(d, "f")


@dataclass
class Order:
    order_id: int
    symbol: str
    client_id: str
    side: str
    type: str
    tif: str
    orig_qty: Decimal
    price: Decimal
    reduce_only: bool
    time: int
    update_time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    close_position: bool = False
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    orig_type: str = ""
    position_side: str = "BOTH"
    good_till: int = 0
    price_match: str = "NONE"
    realized_pnl: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed

    @property
    def avg_price(self) -> Decimal:
        return (self.cum_quote / self.executed).quantize(Decimal("0.00000001")) if self.executed else ZERO

    def to_api(self, with_time: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status, "clientOrderId": self.client_id,
            "price": fs(self.price), "avgPrice": fs(self.avg_price), "origQty": fs(self.orig_qty),
            "executedQty": fs(self.executed), "cumQty": fs(self.executed), "cumQuote": fs(self.cum_quote),
            "timeInForce": self.tif, "type": self.type, "reduceOnly": self.reduce_only,
            "closePosition": self.close_position, "side": self.side, "positionSide": self.position_side,
            "stopPrice": fs(self.stop_price), "workingType": self.working_type, "priceProtect": False,
            "origType": self.orig_type or self.type, "priceMatch": self.price_match,
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": self.good_till,
            "updateTime": self.update_time,
        }
        if with_time:
            out["time"] = self.time
        return out


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal  # 0 with closePosition
    trigger_price: Decimal
    price: Decimal
    tif: str
    working_type: str
    reduce_only: bool
    close_position: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    activate_price: Decimal = ZERO
    callback_rate: Decimal = ZERO
    activated: bool = False
    extreme: Decimal = ZERO
    actual_order_id: int = 0
    actual_price: Decimal = ZERO
    position_side: str = "BOTH"
    price_protect: bool = False
    good_till: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ALGO_OPEN

    def to_api(self) -> dict[str, object]:
        return {
            "algoId": self.algo_id, "clientAlgoId": self.client_algo_id, "algoType": "CONDITIONAL",
            "orderType": self.order_type, "symbol": self.symbol, "side": self.side,
            "positionSide": self.position_side, "timeInForce": self.tif, "quantity": fs(self.qty),
            "algoStatus": self.status, "triggerPrice": fs(self.trigger_price), "price": fs(self.price),
            "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": self.working_type,
            "priceMatch": "NONE", "closePosition": self.close_position, "priceProtect": self.price_protect,
            "reduceOnly": self.reduce_only, "activatePrice": fs(self.activate_price) if self.activate_price else "",
            "callbackRate": fs(self.callback_rate) if self.callback_rate else "",
            "createTime": self.create_time, "updateTime": self.update_time, "triggerTime": self.trigger_time,
            "goodTillDate": self.good_till, "actualOrderId": str(self.actual_order_id) if self.actual_order_id else "",
            "actualPrice": fs(self.actual_price) if self.actual_price else "",
        }


@dataclass
class Trade:
    id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    maker: bool
    time: int
    position_side: str = "BOTH"

    def to_api(self) -> dict[str, object]:
        return {
            "symbol": self.symbol, "id": self.id, "orderId": self.order_id, "side": self.side,
            "price": fs(self.price), "qty": fs(self.qty), "realizedPnl": fs(self.realized_pnl),
            "marginAsset": "USDT", "quoteQty": fs(self.price * self.qty), "commission": fs(self.commission),
            "commissionAsset": "USDT", "time": self.time, "positionSide": self.position_side,
            "buyer": self.side == "BUY", "maker": self.maker,
        }


@dataclass
class Income:
    tran_id: int
    symbol: str
    income_type: str  # TRANSFER, REALIZED_PNL, COMMISSION, FUNDING_FEE, INSURANCE_CLEAR
    income: Decimal
    time: int
    trade_id: str = ""
    info: str = ""

    def to_api(self) -> dict[str, object]:
        return {
            "symbol": self.symbol, "incomeType": self.income_type, "income": fs(self.income), "asset": "USDT",
            "info": self.info or self.income_type, "time": self.time, "tranId": self.tran_id,
            "tradeId": self.trade_id,
        }
