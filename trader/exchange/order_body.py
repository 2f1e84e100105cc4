"""The body of ``POST /fapi/v1/order`` for market and limit orders, built here instead of by ccxt's create_order.

An entry or an exit is the order a candle decides, and ccxt's ``create_order`` spends more time choosing among
spot, margin, portfolio-margin, option and algo shapes than signing and sending take. For the two plain types the
engine sends on that path the body is what ccxt 4.5 builds for a linear swap (binance-futures.md §6.6; a test
compares the two for every shape the engine uses): quantity truncated to the step, price rounded to the tick by
ccxt's own precision functions, ``newOrderRespType=RESULT``. Signing, sending, error mapping and parsing stay
ccxt's (``fapiPrivatePostOrder``, ``parse_order``). Conditional orders (stops, take-profits, trailing) keep
ccxt's ``create_order``: they go to the algo endpoint, after the fill, off the candle's path.
"""

from __future__ import annotations

from typing import Any

from trader.exchange.models import OrderRequest

DIRECT_TYPES = frozenset({"market", "limit"})


def order_body(request: OrderRequest, exchange: Any) -> dict[str, Any]:
    """``request`` (market or limit) as Binance's order parameters, before ccxt adds timestamp and signature."""
    if request.type not in DIRECT_TYPES or request.amount is None:
        raise ValueError(f"{request.type} orders go through ccxt's create_order")
    market = exchange.market(request.pair)
    body: dict[str, Any] = {"symbol": market["id"], "side": request.side.upper(),
                            "newClientOrderId": request.client_order_id, "newOrderRespType": "RESULT",
                            "type": request.type.upper(),
                            "quantity": exchange.amount_to_precision(request.pair, float(request.amount))}
    tif = request.time_in_force
    if request.type == "limit":
        assert request.price is not None
        body["price"] = exchange.price_to_precision(request.pair, float(request.price))
        if tif == "GTX":  # ccxt's post-only: set before the caller's parameters are merged
            body["timeInForce"] = tif
    if request.reduce_only:
        body["reduceOnly"] = True
    if request.type == "limit" and tif != "GTX":
        body["timeInForce"] = tif
    return body
