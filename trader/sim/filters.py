"""exchangeInfo symbol filters and the order checks Binance runs against them (in Binance's order of checks)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

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


def spec_from_entry(entry: Mapping[str, Any]) -> SymbolSpec:
    """A spec from an exchangeInfo symbol entry (a rule snapshot), Decimal from the exchange's own strings."""
    f = {x["filterType"]: x for x in entry.get("filters", ())}
    lot, mlot, pf = f["LOT_SIZE"], f.get("MARKET_LOT_SIZE") or f["LOT_SIZE"], f["PRICE_FILTER"]
    pp = f.get("PERCENT_PRICE") or {}
    extra: dict[str, Any] = {}
    if entry.get("liquidationFee") not in (None, ""):
        extra["liquidation_fee"] = Decimal(str(entry["liquidationFee"]))
    if pp:
        extra.update(multiplier_up=Decimal(str(pp["multiplierUp"])), multiplier_down=Decimal(str(pp["multiplierDown"])))
    if "MAX_NUM_ORDERS" in f:
        extra["max_num_orders"] = int(f["MAX_NUM_ORDERS"]["limit"])
    if entry.get("onboardDate"):
        extra["onboard_date"] = int(entry["onboardDate"])
    return SymbolSpec(str(entry["symbol"]), str(entry["baseAsset"]), str(entry["quoteAsset"]),
                      Decimal(str(pf["tickSize"])), Decimal(str(pf["minPrice"])), Decimal(str(pf["maxPrice"])),
                      Decimal(str(lot["stepSize"])), Decimal(str(lot["minQty"])), Decimal(str(lot["maxQty"])),
                      Decimal(str(mlot["maxQty"])), Decimal(str(f["MIN_NOTIONAL"]["notional"])),
                      int(entry["pricePrecision"]), int(entry["quantityPrecision"]), **extra)


def spec_for(symbol: str, base: str, quote: str, reference_price: float, data_dir: Any = None,
             at_ms: int | None = None) -> SymbolSpec:
    """The symbol's spec from the rule snapshot nearest ``at_ms`` (the run's data directory, else bundled: the
    data the model and a backtest read), or — for a symbol no snapshot covers, as the market mirror may trade — one
    derived from the price level so that one tick is ~1e-5 and one step ~0.1-1 USDT."""
    from trader.model.rules import raw_rules

    entry, _ = raw_rules(symbol, data_dir, at_ms)
    if entry is not None:
        return spec_from_entry(entry)
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
