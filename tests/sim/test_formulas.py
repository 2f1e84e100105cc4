"""Worked cases for the accounting formulas (binance-futures.md §1.4, §2, §3, §4, §5, §8.4), computed by hand."""

from __future__ import annotations

from decimal import Decimal as D

from trader.sim.account import Account, Position, funding_payment, liquidation_price, summarize
from trader.sim.auth import sign
from trader.sim.brackets import BTCUSDT, BTCUSDT_2021, Bracket, bracket_for, maintenance_margin, max_notional


def test_btcusdt_cum_follows_the_continuity_formula():
    # cum_n = floor_n × (mmr_n − mmr_{n−1}) + cum_{n−1}: 50,000×0.001 = 50; 600,000×0.0015 + 50 = 950; …
    assert [int(b.cum) for b in BTCUSDT] == [0, 50, 950, 11_450, 131_450, 481_450, 2_981_450, 14_481_450,
                                             26_481_450, 41_481_450, 121_481_450, 421_481_450]
    # FAQ: 250,000 × (1 % − 0.5 %) + 50 = 1,300, and the 2.5 % tier of the 2021 table carries 16,300.
    assert BTCUSDT_2021[2].cum == D("1300") and BTCUSDT_2021[3].cum == D("16300")


def test_tiered_maintenance_margin_is_continuous_at_a_bracket_edge():
    below = maintenance_margin(BTCUSDT, D("49999.99"))
    at = maintenance_margin(BTCUSDT, D("50000"))
    assert at == D("50000") * D("0.005") - 50 == D("200")
    assert abs(at - below) < D("0.001")
    assert bracket_for(BTCUSDT, D("12000000")).initial_leverage == 25
    assert max_notional(BTCUSDT, 25) == D("70000000") and max_notional(BTCUSDT, 125) == D("50000")


def test_binance_faq_cross_liquidation_example():
    """FAQ-LIQ inputs: WB 1,535,443.01, BTC long 109.488 @ 32,481.98 (mark 31,967.27), ETH long 3,683.979 @ 1,456.84
    (mark 1,335.18, 10 %, cum 135,365). Expected 26,316.89 and 1,153.26."""
    acc = Account(wallet=D("1535443.01"))
    acc.positions["BTCUSDT"] = Position("BTCUSDT", D("109.488"), D("32481.98"))
    acc.positions["ETHUSDT"] = Position("ETHUSDT", D("3683.979"), D("1456.84"))
    eth = [Bracket(1, 10, D(0), D(10) ** 10, D("0.10"), D("135365"))]
    marks = {"BTCUSDT": D("31967.27"), "ETHUSDT": D("1335.18")}
    tables = {"BTCUSDT": BTCUSDT_2021, "ETHUSDT": eth}
    # MM(ETH) = 3,683.979 × 1,335.18 × 0.10 − 135,365 = 356,512.51 (the TMM1 of BTC's formula).
    assert round(maintenance_margin(eth, D("3683.979") * D("1335.18")), 2) == D("356512.51")
    assert round(liquidation_price(acc, "BTCUSDT", marks, tables), 2) == D("26316.89")
    assert round(liquidation_price(acc, "ETHUSDT", marks, tables), 2) == D("1153.26")


def test_isolated_25x_liquidation_prices():
    # Long 0.01 @ 100,000, isolated wallet 40: (1,000 − 40 − 0)/(0.01 × (1 − 0.004)) = 96,385.54
    acc = Account(wallet=D(1000))
    acc.positions["BTCUSDT"] = Position("BTCUSDT", D("0.01"), D("100000"), 25, "ISOLATED", D(40))
    lp = liquidation_price(acc, "BTCUSDT", {"BTCUSDT": D(100000)}, {"BTCUSDT": BTCUSDT})
    assert round(lp, 2) == D("96385.54")
    acc.positions["BTCUSDT"].amt = D("-0.01")  # (1,000 + 40)/(0.01 × 1.004) = 103,585.66
    lp = liquidation_price(acc, "BTCUSDT", {"BTCUSDT": D(100000)}, {"BTCUSDT": BTCUSDT})
    assert round(lp, 2) == D("103585.66")


def test_cross_liquidation_price_none_when_wallet_covers_everything():
    acc = Account(wallet=D(10000))
    acc.positions["BTCUSDT"] = Position("BTCUSDT", D("0.01"), D("100000"), 25)
    assert liquidation_price(acc, "BTCUSDT", {"BTCUSDT": D(100000)}, {"BTCUSDT": BTCUSDT}) is None


def test_fills_fees_and_available_balance_at_25x():
    acc = Account(wallet=D(1000))
    acc.position("BTCUSDT").leverage = 25
    fee = D("100000") * D("0.01") * D("0.0005")  # 0.5 taker
    acc.apply_fill("BTCUSDT", "BUY", D("0.01"), D("100000"), fee, 1)
    acc.apply_fill("BTCUSDT", "BUY", D("0.01"), D("102000"), D(0), 2)
    pos = acc.positions["BTCUSDT"]
    assert pos.entry == D("101000") and pos.amt == D("0.02")
    s = summarize(acc, {"BTCUSDT": D("103000")}, {"BTCUSDT": BTCUSDT})
    # uPnL 0.02 × 2,000 = 40; IM 0.02 × 103,000 / 25 = 82.4; available = 999.5 + 40 − 82.4
    assert s.unrealized == D("40") and s.position_im == D("82.4") and s.available == D("957.1")
    # Closing half at 104,000 realizes 0.01 × 3,000 = 30; the entry does not move.
    res = acc.apply_fill("BTCUSDT", "SELL", D("0.01"), D("104000"), D("0.52"), 3)
    assert res.realized_pnl == D("30") and pos.entry == D("101000")
    assert acc.wallet == D("1000") - D("0.5") + D("30") - D("0.52")
    # ROE of the closed half at 25x: 3,000 / 101,000 × 25 = 74.26 %
    assert round(res.realized_pnl / (D("0.01") * D("101000") / 25) * 100, 2) == D("74.26")


def test_flip_through_zero_reopens_at_the_fill_price():
    acc = Account(wallet=D(1000))
    acc.apply_fill("BTCUSDT", "BUY", D("0.01"), D("100000"), D(0), 1)
    res = acc.apply_fill("BTCUSDT", "SELL", D("0.03"), D("99000"), D(0), 2)
    assert res.realized_pnl == D("-10") and res.opened_qty == D("0.02")
    assert acc.positions["BTCUSDT"].amt == D("-0.02") and acc.positions["BTCUSDT"].entry == D("99000")


def test_funding_direction():
    # Positive rate: longs pay. 0.01 × 100,000 × 0.0001 = 0.1
    assert funding_payment(D("0.01"), D("100000"), D("0.0001")) == D("-0.1")
    assert funding_payment(D("-0.01"), D("100000"), D("0.0001")) == D("0.1")
    assert funding_payment(D("0.5"), D("2000"), D("-0.00025")) == D("0.25")


def test_signature_matches_binance_test_vector():
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    payload = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
    assert sign(secret, payload) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
