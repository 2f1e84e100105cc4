"""Trading through sync ccxt against the simulator: fills, fees, slippage, limits, conditionals, funding,
liquidation — with expected numbers computed by hand from the formulas."""

from __future__ import annotations

import json
from decimal import Decimal as D

import ccxt
import pytest

from tests.sim.conftest import BTC, START, hold_price, sim_config
from trader.sim import SimulatorThread
from trader.sim.client import make_client

TAKER = D("0.0005")
MAKER = D("0.0002")


def _d(x: object) -> D:
    return D(str(x))


def _wallet(ex) -> D:
    info = ex.fetch_balance()["info"]
    return D(info["totalWalletBalance"])


def test_market_order_fills_at_the_ask_and_pays_taker_fee(sim, ex):
    hold_price(sim, 100_000)
    book = ex.fetch_order_book(BTC, 5)
    best_ask = _d(book["asks"][0][0])
    # Spread 0.2 bps around 100,000: half-spread 1.0 → ask 100,001.0, bid 99,999.0
    assert best_ask == D("100001.0") and _d(book["bids"][0][0]) == D("99999.0")
    order = ex.create_order(BTC, "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == 0.01 and _d(order["average"]) == best_ask
    (trade,) = ex.fetch_my_trades(BTC)
    assert trade["takerOrMaker"] == "taker"
    assert _d(trade["fee"]["cost"]) == D("100001.0") * D("0.01") * TAKER == D("0.500005")
    assert _wallet(ex) == D("10000") - D("0.500005")
    (pos,) = ex.fetch_positions([BTC])
    assert pos["contracts"] == 0.01 and pos["side"] == "long" and _d(pos["entryPrice"]) == best_ask
    # Mark 100,000: uPnL = 0.01 × (100,000 − 100,001) = −0.01
    assert _d(pos["unrealizedPnl"]) == D("-0.01")
    bal = ex.fetch_balance()["USDT"]
    # used = IM at mark = 0.01 × 100,000 / 20 (Binance's default leverage)
    assert _d(bal["used"]) == D("50")


def test_large_market_order_walks_the_book(sim, ex):
    ex.set_leverage(75, BTC)
    hold_price(sim, 100_000)
    book = ex.fetch_order_book(BTC, 20)
    ex.create_order(BTC, "market", "buy", 5)
    trades = ex.fetch_my_trades(BTC)
    prices = [_d(t["price"]) for t in trades]
    assert len(trades) > 1 and prices == sorted(prices)
    # Each fill takes a whole level until the last: the fills are exactly the book's levels.
    levels = [(_d(p), _d(q)) for p, q in book["asks"]]
    for (p, q), t in zip(levels, trades[:-1], strict=False):
        assert _d(t["price"]) == p and _d(t["amount"]) == q
    avg = sum(_d(t["price"]) * _d(t["amount"]) for t in trades) / D(5)
    assert avg > levels[0][0]  # slippage


def test_round_trip_realized_pnl_and_fees(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.1)
    hold_price(sim, 101_000)
    ex.create_order(BTC, "market", "sell", 0.1, params={"reduceOnly": True})
    buy, sell = ex.fetch_my_trades(BTC)
    p1, p2 = _d(buy["price"]), _d(sell["price"])
    # ask at 100k: 100,000 + 1.0; bid at 101k: 101,000 − 1.01 = 100,998.99, floored to the 0.1 tick
    assert (p1, p2) == (D("100001.0"), D("100998.9"))
    pnl = D("0.1") * (p2 - p1)  # 99.8
    fees = (p1 + p2) * D("0.1") * TAKER  # 10.05
    assert _d(sell["info"]["realizedPnl"]) == pnl
    assert _wallet(ex) == D("10000") + pnl - fees
    rows = ex.fapiPrivateGetIncome({"symbol": "BTCUSDT"})
    by_type: dict[str, D] = {}
    for r in rows:
        by_type[r["incomeType"]] = by_type.get(r["incomeType"], D(0)) + D(r["income"])
    assert by_type["REALIZED_PNL"] == pnl and by_type["COMMISSION"] == -fees
    assert ex.fetch_positions([BTC]) == []


def test_resting_limit_fills_as_maker_when_price_crosses(sim, ex):
    hold_price(sim, 100_000)
    order = ex.create_order(BTC, "limit", "buy", 0.01, 99_500)
    assert order["status"] == "open"
    # Open-order margin: 0.01 × 99,500 / 20
    assert _d(ex.fetch_balance()["info"]["totalOpenOrderInitialMargin"]) == D("49.75")
    hold_price(sim, 99_000)
    got = ex.fetch_order(order["id"], BTC)
    assert got["status"] == "closed" and _d(got["average"]) == D("99500")
    (trade,) = ex.fetch_my_trades(BTC)
    assert trade["takerOrMaker"] == "maker"
    assert _d(trade["fee"]["cost"]) == D("99500") * D("0.01") * MAKER == D("0.199")


def test_time_in_force_variants(sim, ex):
    hold_price(sim, 100_000)
    ioc = ex.create_order(BTC, "limit", "buy", 0.01, 99_000, params={"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 0
    with pytest.raises(ccxt.OrderNotFillable):  # −5021: FOK below the ask
        ex.create_order(BTC, "limit", "buy", 0.01, 99_000, params={"timeInForce": "FOK"})
    fok = ex.create_order(BTC, "limit", "buy", 0.01, 100_010, params={"timeInForce": "FOK"})
    assert fok["status"] == "closed" and _d(fok["average"]) == D("100001.0")
    with pytest.raises(ccxt.OrderNotFillable):  # −5022: post-only would take
        ex.create_order(BTC, "limit", "buy", 0.01, 100_010, params={"postOnly": True})
    po = ex.create_order(BTC, "limit", "buy", 0.01, 99_900, params={"postOnly": True})
    assert po["status"] == "open" and po["postOnly"]
    # A marketable GTC limit takes what it can up to its price, as taker.
    gtc = ex.create_order(BTC, "limit", "sell", 0.01, 99_990)
    assert gtc["status"] == "closed" and _d(gtc["average"]) == D("99999.0")


def test_order_queries_and_cancels(sim, ex):
    hold_price(sim, 100_000)
    a = ex.create_order(BTC, "limit", "buy", 0.01, 99_000, params={"clientOrderId": "my-id-1"})
    b = ex.create_order(BTC, "limit", "buy", 0.01, 98_000)
    assert {o["id"] for o in ex.fetch_open_orders(BTC)} == {a["id"], b["id"]}
    by_client = ex.fetch_order(None, BTC, params={"origClientOrderId": "my-id-1"})
    assert by_client["id"] == a["id"] and by_client["clientOrderId"] == "my-id-1"
    with pytest.raises(ccxt.InvalidOrder):  # −4116 duplicate newClientOrderId among open orders
        ex.create_order(BTC, "limit", "buy", 0.01, 97_000, params={"clientOrderId": "my-id-1"})
    assert ex.cancel_order(a["id"], BTC)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):  # −2011
        ex.cancel_order(a["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):  # −2013
        ex.fetch_order("123", BTC)
    ex.cancel_all_orders(BTC)
    assert ex.fetch_open_orders(BTC) == []
    assert [o["status"] for o in ex.fetch_orders(BTC)] == ["canceled", "canceled"]


def test_rejections_carry_binance_codes(sim, ex):
    hold_price(sim, 100_000)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # 0.001 × 90,000 = 90 < 100
        ex.create_order(BTC, "limit", "buy", 0.001, 90_000)
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):  # 3 × 100,000 / 20 = 15,000 > 10,000
        ex.create_order(BTC, "market", "buy", 3)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # nothing to reduce
        ex.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    with pytest.raises(ccxt.OperationRejected, match="-4061"):
        ex.create_order(BTC, "market", "buy", 0.01, params={"positionSide": "LONG"})
    with pytest.raises(ccxt.BadRequest, match="-4016"):  # above mark × 1.05
        ex.create_order(BTC, "limit", "buy", 0.01, 106_000)
    raw = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    for qty, price, code in (("0.0015", "90000", "-1111"), ("0", "90000", "-4003"), ("2000", "90000", "-4005"),
                             ("0.01", "90000.05", "-4014"), ("0.01", "500", "-4013")):
        with pytest.raises(ccxt.BadRequest, match=code):
            ex.fapiPrivatePostOrder({**raw, "quantity": qty, "price": price})
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):
        ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.01",
                                 "stopPrice": "90000"})
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        ex.fapiPrivatePostOrder({**raw, "symbol": "XYZUSDT", "quantity": "1", "price": "1"})
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):  # sell stop above the price fires at once
        ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 101_000})
    with pytest.raises(ccxt.BadRequest, match="-4028"):
        ex.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 126})


def test_account_settings(sim, ex):
    assert ex.set_leverage(25, BTC)["maxNotionalValue"] == "70000000"
    with pytest.raises(ccxt.MarginModeAlreadySet):  # −4046
        ex.set_margin_mode("cross", BTC)
    with pytest.raises(ccxt.OperationRejected, match="-4059"):
        ex.set_position_mode(False)
    assert ex.fapiPrivateGetPositionSideDual()["dualSidePosition"] is False
    assert ex.fapiPrivateGetMultiAssetsMargin()["multiAssetsMargin"] is False
    tiers = ex.fetch_leverage_tiers([BTC])[BTC]
    assert tiers[0]["maxLeverage"] == 125 and tiers[1]["minNotional"] == 50_000
    assert tiers[1]["maintenanceMarginRate"] == 0.005
    fee = ex.fetch_trading_fee(BTC)
    assert fee["maker"] == 0.0002 and fee["taker"] == 0.0005
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.OperationRejected, match="-4048"):  # margin type with a position open
        ex.set_margin_mode("isolated", BTC)


def test_stop_loss_triggers_on_the_way_down(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    sl = ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 99_000, "reduceOnly": True})
    assert sl["status"] == "open" and sl["triggerPrice"] == 99_000
    assert [o["id"] for o in ex.fetch_open_orders(BTC, params={"trigger": True})] == [sl["id"]]
    hold_price(sim, 98_000)
    assert ex.fetch_positions([BTC]) == []
    done = ex.fetch_order(sl["id"], BTC, params={"trigger": True})
    assert done["status"] == "closed" and done["info"]["algoStatus"] == "FINISHED"
    sell = ex.fetch_my_trades(BTC)[-1]
    # Triggered at 99,000: the market order sells into the bid synthesized there (99,000 − 0.99 → 98,999.0).
    assert _d(sell["price"]) == D("98999.0")


def test_take_profit_close_position_and_cancel(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.02)
    tp = ex.create_order(BTC, "TAKE_PROFIT_MARKET", "sell", None, None,
                         params={"stopPrice": 101_000, "closePosition": True})
    other = ex.create_order(BTC, "market", "sell", 0.02, params={"stopLossPrice": 95_000, "reduceOnly": True})
    # Binance answers an algo cancel with {algoId, clientAlgoId, code, msg}: no status for ccxt to parse.
    assert ex.cancel_order(other["id"], BTC, params={"trigger": True})["info"]["msg"] == "success"
    assert ex.fetch_order(other["id"], BTC, params={"trigger": True})["status"] == "canceled"
    hold_price(sim, 102_000)
    assert ex.fetch_positions([BTC]) == []
    assert ex.fetch_order(tp["id"], BTC, params={"trigger": True})["status"] == "closed"
    assert _d(ex.fetch_my_trades(BTC)[-1]["amount"]) == D("0.02")


def test_trailing_stop_follows_the_high(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    tr = ex.create_order(BTC, "market", "sell", 0.01, params={
        "trailingPercent": 1, "trailingTriggerPrice": 101_000, "reduceOnly": True})
    assert tr["info"]["orderType"] == "TRAILING_STOP_MARKET"
    hold_price(sim, 102_000)  # activates at 101,000, high 102,000
    assert ex.fetch_positions([BTC]) != []
    hold_price(sim, 101_500)  # above 102,000 × 0.99 = 100,980: still holding
    assert ex.fetch_positions([BTC]) != []
    hold_price(sim, 100_000)
    assert ex.fetch_positions([BTC]) == []
    # Triggered at 100,980; the bid synthesized there is 100,980 − 1.0098 → 100,978.9
    assert _d(ex.fetch_my_trades(BTC)[-1]["price"]) == D("100978.9")


def test_funding_is_paid_at_each_settlement(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    before = _wallet(ex)
    sim.step(24 * 3_600_000)  # three settlements: 08:00, 16:00, 00:00
    rows = ex.fetch_funding_history(BTC)
    assert [r["timestamp"] for r in rows] == [START - 60_000 + h * 3_600_000 for h in (8, 16, 24)]
    rates = ex.fetch_funding_rate_history(BTC, since=START, limit=3)
    assert [r["timestamp"] for r in rates] == [r["timestamp"] for r in rows]
    total = D(0)
    for row, rate in zip(rows, rates, strict=True):
        # Long 0.01 at mark 100,000: cash flow −0.01 × 100,000 × rate
        expected = (-D("0.01") * D("100000") * _d(rate["info"]["fundingRate"])).quantize(D("0.00000001"))
        assert _d(row["info"]["income"]) == expected
        total += expected
    assert _wallet(ex) == before + total


def test_funding_sign_for_shorts(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "sell", 0.01)
    sim.step(8 * 3_600_000)
    (row,) = ex.fetch_funding_history(BTC)
    rate = _d(ex.fetch_funding_rate_history(BTC, since=START, limit=1)[0]["info"]["fundingRate"])
    assert _d(row["info"]["income"]) == (D("0.01") * D("100000") * rate).quantize(D("0.00000001"))


def test_liquidation_at_binance_price_with_fee():
    with SimulatorThread(sim_config(balance=D("100"))) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        ex.set_leverage(25, BTC)
        hold_price(sim, 100_000)
        ex.create_order(BTC, "market", "buy", 0.02)
        (trade,) = ex.fetch_my_trades(BTC)
        entry, fee = _d(trade["price"]), _d(trade["fee"]["cost"])
        wb = D(100) - fee
        # One-way cross, bracket 1 (0.4 %, cum 0): LP = (WB − P·EP)/(P·MMR − P)
        lp = (wb - D("0.02") * entry) / (D("0.02") * D("0.004") - D("0.02"))
        (pos,) = ex.fetch_positions([BTC])
        assert _d(pos["info"]["liquidationPrice"]) == lp.quantize(D("0.00000001"))
        hold_price(sim, 95_000)
        assert ex.fetch_positions([BTC]) == []
        liq = ex.fetch_my_trades(BTC)[-1]
        px = lp.quantize(D("0.1"))
        assert _d(liq["price"]) == px and liq["side"] == "sell"
        realized = D("0.02") * (px - entry)
        # Fee |q|·LP·1.25 % capped at the maintenance margin at LP (0.02 × LP × 0.4 %) and at the margin balance the
        # close left (LP rounded to the tick leaves a hair less): the account ends at zero, not in the fund's debt.
        liq_fee = max(D(0), min(D("0.02") * px * D("0.0125"), D("0.02") * px * D("0.004"),
                                wb + realized)).quantize(D("0.00000001"))
        assert _wallet(ex) == max(D(0), wb + realized - liq_fee)
        income = ex.fapiPrivateGetIncome({"incomeType": "INSURANCE_CLEAR"})
        assert D(income[0]["income"]) == -liq_fee
        orders = ex.fetch_orders(BTC)
        assert orders[-1]["clientOrderId"].startswith("autoclose-")


def test_working_type_chooses_mark_or_contract_price(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.02)
    on_mark = ex.create_order(BTC, "market", "sell", 0.01, params={
        "stopLossPrice": 99_000, "reduceOnly": True, "workingType": "MARK_PRICE"})
    on_last = ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 99_000, "reduceOnly": True})
    # The mark alone drops (a basis shock): only the MARK_PRICE stop fires.
    sim.call(lambda s: s.set_price("BTCUSDT", 98_500, target="mark"))
    sim.step(1000)
    assert ex.fetch_order(on_mark["id"], BTC, params={"trigger": True})["status"] == "closed"
    assert ex.fetch_order(on_last["id"], BTC, params={"trigger": True})["status"] == "open"
    # The triggered market order still trades the book around the contract price (100,000): bid 99,999.0.
    assert _d(ex.fetch_my_trades(BTC)[-1]["price"]) == D("99999.0")
    sim.call(lambda s: s.clear_price("BTCUSDT"))
    hold_price(sim, 98_000)
    assert ex.fetch_order(on_last["id"], BTC, params={"trigger": True})["status"] == "closed"
    assert ex.fetch_positions([BTC]) == []


def test_stop_limit_rests_after_trigger_then_finishes(sim, ex):
    hold_price(sim, 100_000)
    # Buy stop-limit: trigger 101,000, limit 100,500 — by the time it triggers the market is above the limit.
    order = ex.create_order(BTC, "limit", "buy", 0.01, 100_500, params={"triggerPrice": 101_000})
    assert order["info"]["orderType"] == "STOP"
    hold_price(sim, 102_000)
    algo = ex.fetch_order(order["id"], BTC, params={"trigger": True})
    assert algo["info"]["algoStatus"] == "TRIGGERED"
    engine_id = algo["info"]["actualOrderId"]
    assert ex.fetch_order(engine_id, BTC)["status"] == "open"
    hold_price(sim, 100_000)  # back down through the limit: filled as maker
    assert ex.fetch_order(engine_id, BTC)["status"] == "closed"
    assert ex.fetch_order(order["id"], BTC, params={"trigger": True})["info"]["algoStatus"] == "FINISHED"
    (trade,) = ex.fetch_my_trades(BTC)
    assert _d(trade["price"]) == D("100500") and trade["takerOrMaker"] == "maker"


def test_edit_order_and_batch_orders(sim, ex):
    hold_price(sim, 100_000)
    order = ex.create_order(BTC, "limit", "buy", 0.01, 99_000)
    edited = ex.edit_order(order["id"], BTC, "limit", "buy", 0.02, 99_500)
    assert edited["id"] == order["id"] and edited["amount"] == 0.02 and edited["price"] == 99_500
    # Amended above the ask it takes at once, as taker.
    taken = ex.edit_order(order["id"], BTC, "limit", "buy", 0.02, 100_010)
    assert taken["status"] == "closed" and _d(taken["average"]) == D("100001.0")
    results = ex.create_orders([
        {"symbol": BTC, "type": "limit", "side": "sell", "amount": 0.01, "price": 101_000},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.001, "price": 99_000},  # 99 < 100: −4164
    ])
    raw = json.loads(ex.last_http_response)  # Binance answers in request order (ccxt re-sorts its parsed list by time)
    assert raw[0]["status"] == "NEW" and raw[1]["code"] == -4164
    assert sorted(o["status"] for o in results) == ["open", "rejected"]
    assert [o["id"] for o in ex.fetch_open_orders(BTC)] == [str(raw[0]["orderId"])]
