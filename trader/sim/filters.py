"""exchangeInfo symbol filters and the order checks Binance runs against them (in Binance's order of checks)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from trader.sim.errors import err

ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX", "GTD"]


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str  # BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    price_precision: int
    quantity_precision: int
    liquidation_fee: Decimal = Decimal("0.012500")
    multiplier_up: Decimal = Decimal("1.0500")
    multiplier_down: Decimal = Decimal("0.9500")
    max_num_orders: int = 200
    onboard_date: int = 1569398400000

    @property
    def pair(self) -> str:
        return f"{self.base}/{self.quote}:{self.quote}"

    def round_price(self, price: Decimal | float) -> Decimal:
        p = Decimal(str(price)) if not isinstance(price, Decimal) else price
        return (p / self.tick_size).quantize(Decimal(1), rounding=ROUND_HALF_UP) * self.tick_size

    def round_qty_down(self, qty: Decimal) -> Decimal:
        return (qty / self.step_size).quantize(Decimal(1), rounding=ROUND_DOWN) * self.step_size

    def exchange_info(self) -> dict[str, object]:
        def s(d: Decimal) -> str:
            return format(d, "f")

        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": self.onboard_date,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.quote,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": s(self.liquidation_fee),
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": s(self.min_price), "maxPrice": s(self.max_price),
                 "tickSize": s(self.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": s(self.min_qty), "maxQty": s(self.max_qty),
                 "stepSize": s(self.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": s(self.min_qty), "maxQty": s(self.market_max_qty),
                 "stepSize": s(self.step_size)},
                {"filterType": "MAX_NUM_ORDERS", "limit": self.max_num_orders},
                {"filterType": "MIN_NOTIONAL", "notional": s(self.min_notional)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": s(self.multiplier_up),
                 "multiplierDown": s(self.multiplier_down), "multiplierDecimal": "4"},
            ],
            # ccxt refuses locally any order type missing from this list, so all seven are listed.
            "orderTypes": list(ORDER_TYPES),
            "timeInForce": list(TIME_IN_FORCE),
            "permissionSet": ["GRID", "COPY"],
        }


# Values from Binance exchangeInfo dumps (BTCUSDT and ETHUSDT per the reference doc; SOLUSDT from public dumps).
KNOWN_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", "BTC", "USDT", Decimal("0.10"), Decimal("556.80"), Decimal("4529764"),
                          Decimal("0.001"), Decimal("0.001"), Decimal("1000"), Decimal("120"), Decimal("100"), 2, 3),
    "ETHUSDT": SymbolSpec("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("39.86"), Decimal("306177"),
                          Decimal("0.001"), Decimal("0.001"), Decimal("10000"), Decimal("2000"), Decimal("20"), 2, 3),
    "SOLUSDT": SymbolSpec("SOLUSDT", "SOL", "USDT", Decimal("0.0100"), Decimal("0.4200"), Decimal("6857"),
                          Decimal("1"), Decimal("1"), Decimal("1000000"), Decimal("5000"), Decimal("5"), 4, 0),
}


def spec_for(symbol: str, base: str, quote: str, reference_price: float) -> SymbolSpec:
    """The known spec, or one derived from the price level so that one tick is ~1e-5 and one step ~0.1-1 USDT."""
    if symbol in KNOWN_SPECS:
        return KNOWN_SPECS[symbol]
    mag = math.floor(math.log10(max(reference_price, 1e-8)))
    price_dec = max(0, 5 - mag)
    qty_dec = max(0, min(3, mag - 1)) if mag > 1 else 0
    tick = Decimal(1).scaleb(-price_dec)
    step = Decimal(1).scaleb(-qty_dec)
    return SymbolSpec(symbol, base, quote, tick, tick * 10, Decimal(str(reference_price * 50)).quantize(tick), step,
                      step, Decimal(10_000_000) * step, Decimal(1_000_000) * step, Decimal("5"), price_dec, qty_dec)


def parse_decimal(value: object, name: str) -> Decimal:
    """A request parameter as Decimal; malformed → −1102 (Binance reports a bad number as 'malformed')."""
    if value is None or value == "":
        raise err(-1102, name)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise err(-1102, name) from None
    if not d.is_finite():
        raise err(-1102, name)
    return d


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -int(exp))


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    if _decimals(price) > spec.price_precision:
        raise err(-1111)
    if price < spec.min_price:
        raise err(-4013)
    if price > spec.max_price:
        raise err(-4002)
    if (price - spec.min_price) % spec.tick_size != 0:
        raise err(-4014)


def check_quantity(spec: SymbolSpec, qty: Decimal, market: bool) -> None:
    if _decimals(qty) > spec.quantity_precision:
        raise err(-1111)
    if qty <= 0:
        raise err(-4003)
    if qty < spec.min_qty:
        raise err(-4004)
    if qty > (spec.market_max_qty if market else spec.max_qty):
        raise err(-4005)
    if (qty - spec.min_qty) % spec.step_size != 0:
        raise err(-4023)


def check_percent_price(spec: SymbolSpec, side: str, price: Decimal, mark: Decimal) -> None:
    if side == "BUY" and price > mark * spec.multiplier_up:
        raise err(-4016)
    if side == "SELL" and price < mark * spec.multiplier_down:
        raise err(-4024)


def check_min_notional(spec: SymbolSpec, qty: Decimal, price: Decimal, reduce_only: bool) -> None:
    if not reduce_only and qty * price < spec.min_notional:
        raise err(-4164, format(spec.min_notional.normalize(), "f"))
