"""Worked numeric cases for trader.model's USDT-M formulas (binance-futures.md §1.4, §2, §3, §4, §5)."""

from __future__ import annotations

import pytest

from trader.backtest.slippage import SlippageModel
from trader.model.instruments import Bracket, FeeSchedule, brackets_from_table
from trader.model.money import (
    bracket_for,
    funding_cashflow,
    initial_margin,
    liquidation_price,
    maintenance_margin,
    max_notional,
    unrealized_pnl,
)
from trader.model.rules import instrument as instrument_spec

# BTCUSDT from the bundled leverageBracket snapshot (binance-futures.md §1.4's table).
BTC_BRACKETS = instrument_spec("BTC/USDT:USDT").brackets

# The 2021 table behind the FAQ's worked example (binance-futures.md §1.4).
HIST_2021 = brackets_from_table(
    [
        (0, 50_000, 0.004, 125),
        (50_000, 250_000, 0.005, 100),
        (250_000, 1_000_000, 0.01, 50),
        (1_000_000, 10_000_000, 0.025, 20),
        (10_000_000, 20_000_000, 0.05, 10),
        (20_000_000, 50_000_000, 0.10, 5),
        (50_000_000, 100_000_000, 0.125, 4),
        (100_000_000, 200_000_000, 0.15, 3),
        (200_000_000, 300_000_000, 0.25, 2),
        (300_000_000, 9e18, 0.50, 1),
    ]
)


def test_btc_bracket_cum_matches_binance_table() -> None:
    assert [b.cum for b in BTC_BRACKETS[:8]] == pytest.approx(
        [0, 50, 950, 11_450, 131_450, 481_450, 2_981_450, 14_481_450]
    )


def test_faq_cum_example_and_continuity() -> None:
    # FAQ: 250,000 × (1 % − 0.5 %) + 50 = 1,300; and 16,300 at the 2.5 % tier.
    assert HIST_2021[2].cum == pytest.approx(1_300)
    assert HIST_2021[3].cum == pytest.approx(16_300)
    for b in BTC_BRACKETS[1:]:
        below = maintenance_margin(b.floor - 1e-6, BTC_BRACKETS)
        at = maintenance_margin(b.floor, BTC_BRACKETS)
        assert at == pytest.approx(below, abs=1e-3)


def test_margin_pnl_and_fees_at_25x() -> None:
    assert initial_margin(0.01, 100_000, 25) == pytest.approx(40.0)
    assert unrealized_pnl(0.01, 100_000, 101_000) == pytest.approx(10.0)
    assert unrealized_pnl(-0.01, 100_000, 101_000) == pytest.approx(-10.0)
    fees = FeeSchedule()
    assert fees.fee(100_000, 0.01, maker=False) == pytest.approx(0.5)  # 0.05 % taker
    assert fees.fee(100_000, -0.01, maker=True) == pytest.approx(0.2)  # 0.02 % maker
    # ROE of a 1 % move at 25x is 25 % of the margin.
    assert unrealized_pnl(0.01, 100_000, 101_000) / initial_margin(0.01, 100_000, 25) == pytest.approx(0.25)


def test_maintenance_margin_tiers() -> None:
    assert maintenance_margin(40_000, BTC_BRACKETS) == pytest.approx(160.0)  # 0.4 %
    assert maintenance_margin(100_000, BTC_BRACKETS) == pytest.approx(450.0)  # 0.5 % − 50
    assert maintenance_margin(1_000_000, BTC_BRACKETS) == pytest.approx(5_550.0)  # 0.65 % − 950


def test_faq_cross_liquidation_example() -> None:
    """FAQ-LIQ worked example (freqtrade encodes the same numbers): two cross longs sharing one wallet."""
    wb = 1_535_443.01
    btc_q, btc_ep, btc_mark = 109.488, 32_481.98, 31_967.27
    eth_q, eth_ep, eth_mark = 3_683.979, 1_456.84, 1_335.18
    # The FAQ gives ETH's tier directly (MMR 10 %, cum 135,365); ETH's own table is not reproduced here.
    eth_tier = (Bracket(0.0, 1e18, 0.10, 135_365.0, 10),)
    mm_eth = maintenance_margin(eth_q * eth_mark, eth_tier)
    mm_btc = maintenance_margin(btc_q * btc_mark, HIST_2021)
    assert mm_eth == pytest.approx(356_512.51, abs=0.01)
    assert mm_btc == pytest.approx(71_200.81, abs=0.01)
    upnl_eth = eth_q * (eth_mark - eth_ep)
    upnl_btc = btc_q * (btc_mark - btc_ep)
    lp_btc = liquidation_price(1, btc_q, btc_ep, wb, HIST_2021, mm_eth, upnl_eth, ref_price=btc_mark)
    lp_eth = liquidation_price(1, eth_q, eth_ep, wb, eth_tier, mm_btc, upnl_btc, ref_price=eth_mark)
    assert lp_btc == pytest.approx(26_316.89, abs=0.01)
    assert lp_eth == pytest.approx(1_153.26, abs=0.01)
    # Hand computation from the one-way formula for BTC (bracket 4: 2.5 %, cum 16,300).
    hand = (wb - mm_eth + upnl_eth + 16_300 - btc_q * btc_ep) / (btc_q * 0.025 - btc_q)
    assert lp_btc == pytest.approx(hand)


def test_isolated_style_25x_illustration() -> None:
    # 0.01 BTC at 100,000 with 40 USDT backing it (1,000 / 25): long LP 96,385.54, short 103,585.66.
    assert liquidation_price(1, 0.01, 100_000, 40.0, BTC_BRACKETS) == pytest.approx(96_385.54, abs=0.01)
    assert liquidation_price(-1, 0.01, 100_000, 40.0, BTC_BRACKETS) == pytest.approx(103_585.66, abs=0.01)
    # At the liquidation price the margin balance equals the maintenance margin.
    lp = liquidation_price(1, 0.01, 100_000, 40.0, BTC_BRACKETS)
    assert 40.0 + 0.01 * (lp - 100_000) == pytest.approx(maintenance_margin(0.01 * lp, BTC_BRACKETS))


def test_overcollateralised_position_has_no_liquidation_price() -> None:
    assert liquidation_price(1, 0.01, 100_000, 1_000.0, BTC_BRACKETS) is None


def test_bracket_iteration_moves_to_the_bracket_of_the_liquidation_notional() -> None:
    # 7 BTC at 100,000 (700k notional, tier 3) with a thin wallet: P × LP lands back in tier 3 only after checking.
    lp = liquidation_price(1, 7.0, 100_000, 40_000.0, BTC_BRACKETS)
    b = bracket_for(7.0 * lp, BTC_BRACKETS)
    assert lp == pytest.approx((40_000 + b.cum - 7 * 100_000) / (7 * b.mmr - 7))


@pytest.mark.parametrize(
    ("qty", "rate", "expected"),
    [(0.01, 0.0001, -0.1005), (-0.01, 0.0001, 0.1005), (0.01, -0.0002, 0.201), (-0.01, -0.0002, -0.201)],
)
def test_funding_sign_by_side(qty: float, rate: float, expected: float) -> None:
    # Positive rate: longs pay shorts; negative: shorts pay longs. Mark 100,500.
    assert funding_cashflow(qty, 100_500, rate) == pytest.approx(expected)


def test_slippage_is_adverse() -> None:
    s = SlippageModel(bps=2.0, range_share=0.1)
    assert s.apply(100.0, True, 1.0) == pytest.approx(100.0 + 0.02 + 0.1)
    assert s.apply(100.0, False, 1.0) == pytest.approx(100.0 - 0.02 - 0.1)


def test_step_and_tick_rounding() -> None:
    spec = instrument_spec("BTC/USDT:USDT")
    assert spec.round_qty_down(0.0123456) == pytest.approx(0.012)
    assert spec.round_qty_down(0.003) == pytest.approx(0.003)  # no float shortfall to 0.002
    assert spec.round_price(101_234.56) == pytest.approx(101_234.6)
    assert max_notional(spec.brackets, 25) == 70_000_000
