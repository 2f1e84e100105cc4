"""The market and limit order bodies the client builds itself (trader/exchange/order_body.py) are exactly what
ccxt's create_order would send, key for key and in order, for every shape the engine places, and signed
(``BinanceUSDM.sign_fapi_post``) exactly as ccxt's sign would; such an order placed through the client comes back
parsed as ccxt's create_order returns it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trader.exchange.models import OrderRequest
from trader.exchange.order_body import order_body

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"

SHAPES = [
    OrderRequest(BTC, "buy", "market", "bsm-1-entry-0", amount=Decimal("0.0123456")),  # truncated to the step
    OrderRequest(ETH, "sell", "market", "bsm-1-entry-1", amount=Decimal("1.5")),
    OrderRequest(BTC, "sell", "market", "bsm-1-exit-0", amount=Decimal("0.012"), reduce_only=True),
    OrderRequest(BTC, "buy", "limit", "bsm-2-entry-0", amount=Decimal("0.01"), price=Decimal("101234.56")),
    OrderRequest(BTC, "sell", "limit", "bsm-2-take_profit-0", amount=Decimal("0.01"), price=Decimal("101234.56"),
                 reduce_only=True),
    OrderRequest(ETH, "buy", "limit", "bsm-3-entry-0", amount=Decimal("0.5"), price=Decimal("2501.237"),
                 time_in_force="GTX"),
    OrderRequest(ETH, "sell", "limit", "bsm-3-exit-0", amount=Decimal("0.5"), price=Decimal("2601.2"),
                 reduce_only=True, time_in_force="GTX"),
    OrderRequest(ETH, "sell", "limit", "bsm-3-exit-1", amount=Decimal("0.5"), price=Decimal("2601.2"),
                 time_in_force="IOC"),
    OrderRequest(ETH, "sell", "limit", "bsm-3-exit-2", amount=Decimal("0.5"), price=Decimal("2601.2"),
                 reduce_only=True, time_in_force="IOC"),
]


@pytest.mark.parametrize("request_", SHAPES, ids=lambda r: r.client_order_id)
async def test_the_body_is_what_ccxt_would_send(client, request_: OrderRequest) -> None:
    await client.ccxt.load_markets()
    pair, kind, side, amount, price, params = request_.ccxt_args(client.ccxt)
    theirs = client.ccxt.create_order_request(pair, kind, side, amount, price, dict(params, isAlgoOrder=False))
    assert list(order_body(request_, client.ccxt).items()) == list(theirs.items())


@pytest.mark.parametrize("request_", SHAPES, ids=lambda r: r.client_order_id)
async def test_the_signed_request_is_what_ccxt_would_send(client, monkeypatch, request_: OrderRequest) -> None:
    await client.ccxt.load_markets()
    monkeypatch.setattr(client.ccxt, "nonce", lambda: 1_765_000_000_123)
    body = order_body(request_, client.ccxt)
    theirs = client.ccxt.sign("order", ["fapiPrivate"], "POST", dict(body))
    assert client.ccxt.sign_fapi_post("order", body) == (theirs["url"], theirs["headers"], theirs["body"])
    with_window = client.ccxt.sign("order", ["fapiPrivate"], "POST", dict(body, recvWindow=2500))
    assert client.ccxt.sign_fapi_post("order", dict(body, recvWindow=2500))[2] == with_window["body"]


async def test_keys_other_than_hmac_are_signed_by_ccxt(client) -> None:
    client.ccxt.secret = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"
    assert client.ccxt.sign_fapi_post("order", {"symbol": "BTCUSDT"}) is None


async def test_conditional_orders_are_left_to_ccxt(client) -> None:
    await client.ccxt.load_markets()
    stop = OrderRequest(BTC, "sell", "stop_market", "bsm-1-stop-0", trigger_price=Decimal("90000"),
                        close_position=True)
    with pytest.raises(ValueError, match="create_order"):
        order_body(stop, client.ccxt)


async def test_a_direct_order_comes_back_as_ccxt_parses_it(sim, client) -> None:
    await client.initialize([BTC], leverage=25)
    req = OrderRequest(BTC, "buy", "market", "bsm-9-entry-0", amount=Decimal("0.002"))
    state = await client.create_order(req)
    assert state.client_order_id == req.client_order_id and state.status == "closed"
    assert state.filled == Decimal("0.002") and state.average is not None and state.average > 0
    again = await client.find_order(req)  # the exchange's own record of it, read back by id
    assert again is not None and again.id == state.id and again.filled == state.filled


@pytest.mark.parametrize("query", [
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.012", "newClientOrderId": "bsm-1-entry-0",
     "reduceOnly": "true", "timestamp": 1_700_000_000_000, "recvWindow": 5000, "price": Decimal("1.50"),
     "stopPrice": 1.5e-7},
    {"note": "a&b=c/ü+% x"},  # every character quote escapes
    {"a": "b=c"}, {"a": "x&y=z"}, {"a b": "c"}, {"e": ""},  # a separator inside one pair
    {"raw": b"a b"}, {b"key": "v"}, {"n": None}, {"t": True}, {"l": [1, 2]},  # what urlencode does with the rest
])
def test_the_query_is_encoded_as_urlencode_does(query: dict[str, object]) -> None:
    from urllib.parse import quote, urlencode

    from trader.exchange.ccxt_binance import form_encode

    assert form_encode(query) == urlencode(query, quote_via=quote)
