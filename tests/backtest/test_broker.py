"""The futures broker inside Backtrader, on hand-made bars with hand-computed expectations."""

from __future__ import annotations

import backtrader as bt
import pytest
from backtest_helpers import MIN, T0, flat, run_bars

from trader.backtest.slippage import SlippageModel
from trader.model.instruments import FeeSchedule

FEES = FeeSchedule(maker=0.0002, taker=0.0005)


def buy(qty: float, **kw):
    return lambda s, d: s.buy(data=d, size=qty, **kw)


def sell(qty: float, **kw):
    return lambda s, d: s.sell(data=d, size=qty, **kw)


def test_market_round_trip_margin_fees_and_pnl() -> None:
    bars = [flat(100_000), (100_000, 101_000, 100_000, 101_000), flat(101_000), flat(101_000)]
    run = run_bars(bars, {0: buy(0.01, tag="in"), 2: lambda s, d: s.close_position(d, tag="out")}, fees=FEES)
    b = run.broker
    assert run.fills("in") == [(100_000.0, 0.01)]  # the next bar's open, never the signal bar's close
    assert run.fills("out") == [(101_000.0, -0.01)]
    # 1,000 − 0.5 (taker in) + 10 (P&L) − 0.505 (taker out)
    assert b.wallet == pytest.approx(1_008.995)
    (t,) = b.trades
    assert (t.side, t.qty, t.entry_price, t.exit_price) == ("long", 0.01, 100_000.0, 101_000.0)
    assert t.fees == pytest.approx(1.005)
    assert t.net_pnl == pytest.approx(8.995)
    # Equity at bar 1's close: wallet after the entry fee plus uPnL on the mark.
    assert b.equity[1] == pytest.approx(999.5 + 10.0)


def test_available_balance_posts_initial_margin() -> None:
    seen = {}

    def look(s, d) -> None:
        seen["avail"] = s.account.available_balance()
        seen["value"] = s.broker.getvalue()

    run_bars([flat(100_000)] * 4, {0: buy(0.01), 2: look}, fees=FEES)
    # 1,000 − 0.5 fee − 40 margin (0.01 × 100,000 / 25)
    assert seen["avail"] == pytest.approx(959.5)
    assert seen["value"] == pytest.approx(999.5)


def _bracket(stop: float, tps=()):
    return lambda s, d: s.open_position(d, 1, 0.01, stop, tps)


def test_stop_fills_at_its_price_inside_the_bar() -> None:
    bars = [flat(100_000), flat(100_000), (99_500, 99_600, 98_800, 99_000), flat(99_000)]
    run = run_bars(bars, {0: _bracket(99_000)})
    assert run.fills("stop") == [(99_000.0, -0.01)]
    assert run.broker.wallet == pytest.approx(1_000 - 10.0)
    assert run.broker.trades[0].exit_reason == "stop"


def test_stop_gapped_through_fills_at_the_open() -> None:
    bars = [flat(100_000), flat(100_000), (98_500, 98_700, 98_000, 98_200), flat(98_200)]
    run = run_bars(bars, {0: _bracket(99_000)})
    assert run.fills("stop") == [(98_500.0, -0.01)]
    assert run.broker.wallet == pytest.approx(1_000 - 15.0)


def test_stop_fill_pays_taker_fee_and_slippage() -> None:
    bars = [flat(100_000), flat(100_000), (99_500, 99_600, 98_800, 99_000), flat(99_000)]
    run = run_bars(bars, {0: _bracket(99_000)}, fees=FEES, slippage=SlippageModel(bps=1.0))
    entry = 100_000 * 1.0001
    exit_ = 99_000 * 0.9999
    assert run.fills("entry") == [(pytest.approx(entry), 0.01)]
    assert run.fills("stop") == [(pytest.approx(exit_), -0.01)]
    assert run.broker.wallet == pytest.approx(1_000 + 0.01 * (exit_ - entry) - 0.0005 * 0.01 * (entry + exit_))


def test_protective_orders_work_in_the_entry_bar() -> None:
    # Entry fills at bar 1's open; the same bar then falls through the stop: the stop must catch it.
    bars = [flat(100_000), (100_000, 100_100, 98_500, 98_700), flat(98_700)]
    run = run_bars(bars, {0: _bracket(99_000)})
    assert run.fills("stop") == [(99_000.0, -0.01)]


def test_partial_take_profits_are_reduce_only_and_leave_the_stop_on_the_rest() -> None:
    tps = [(101_000, 0.003), (102_000, 0.003), (105_000, 0.004)]
    bars = [flat(100_000), flat(100_000), (100_500, 102_500, 100_400, 102_000), (101_000, 101_100, 98_900, 99_000),
            flat(99_000)]
    run = run_bars(bars, {0: _bracket(99_000, tps)}, fees=FEES)
    assert run.fills("tp1") == [(101_000.0, -0.003)]
    assert run.fills("tp2") == [(102_000.0, -0.003)]
    assert run.fills("stop") == [(99_000.0, -0.004)]  # close-position stop takes only what is left
    assert "Canceled" in run.statuses("tp3")  # cancelled once flat, never turned into a short
    (t,) = run.broker.trades
    assert t.realized_pnl == pytest.approx(0.003 * 1_000 + 0.003 * 2_000 - 0.004 * 1_000)
    # Resting take-profits are maker fills, the entry and the stop taker.
    assert t.fees == pytest.approx(0.0005 * 1_000 + 0.0002 * (0.003 * 101_000 + 0.003 * 102_000) + 0.0005 * 396)
    assert run.broker.getposition(run.broker._pairs and next(iter(run.broker._pairs))).size == 0


def test_adverse_extreme_first_when_stop_and_target_share_a_bar() -> None:
    bars = [flat(100_000), flat(100_000), (100_000, 101_500, 98_500, 100_000), flat(100_000)]
    run = run_bars(bars, {0: _bracket(99_000, [(101_000, 0.01)])})
    assert run.fills("stop") == [(99_000.0, -0.01)]
    assert run.fills("tp1") == []


def test_take_profit_gapped_through_fills_at_the_open() -> None:
    bars = [flat(100_000), flat(100_000), (101_500, 101_800, 101_400, 101_600), flat(101_600)]
    run = run_bars(bars, {0: _bracket(99_000, [(101_000, 0.01)])})
    assert run.fills("tp1") == [(101_500.0, -0.01)]


def test_reduce_only_never_flips_the_position() -> None:
    bars = [flat(100_000)] * 5
    run = run_bars(bars, {0: buy(0.01), 2: sell(0.02, reduce_only=True, tag="ro")})
    assert run.fills("ro") == [(100_000.0, -0.01)]
    assert not run.broker.trades[0].liquidated
    pos = next(iter(run.broker.positions.values()))
    assert pos.size == 0


def test_reduce_only_without_position_is_rejected() -> None:
    run = run_bars([flat(100_000)] * 3, {0: sell(0.01, reduce_only=True, tag="ro")})
    assert run.statuses("ro")[-1] == "Rejected"
    assert "-2022" in run.broker.rejections[0]


def test_exchange_rules_reject_bad_orders() -> None:
    run = run_bars([flat(100_000)] * 3, {0: lambda s, d: (s.buy(data=d, size=0.0005, tag="small"),
                                                           s.buy(data=d, size=0.0105, tag="step"))})
    assert run.statuses("small")[-1] == "Rejected"  # 50 USDT < BTC's 100 minimum notional
    assert run.statuses("step")[-1] == "Rejected"  # not a multiple of 0.001
    run = run_bars([flat(100_000)] * 3, {0: buy(0.01, tag="big")}, wallet=30.0)
    assert run.statuses("big")[-1] == "Margin"  # needs 40 USDT of margin


def test_unsupported_order_types_are_rejected_not_simulated_wrongly() -> None:
    run = run_bars([flat(100_000)] * 3, {0: buy(0.01, exectype=bt.Order.StopTrail, trailamount=10.0, tag="trail")})
    assert run.statuses("trail")[-1] == "Rejected"


# --- funding --------------------------------------------------------------------------------------------------
FUND_AT = T0 + 3 * MIN  # settlement stamped at bar 3's open


@pytest.mark.parametrize(("side", "rate", "cash"), [(1, 0.0001, -0.1005), (-1, 0.0001, 0.1005),
                                                    (1, -0.0001, 0.1005), (-1, -0.0001, -0.1005)])
def test_funding_paid_or_received_by_side(side: int, rate: float, cash: float) -> None:
    order = buy(0.01) if side > 0 else sell(0.01)
    run = run_bars([flat(100_000)] * 6, {0: order}, funding=([FUND_AT], [rate], [100_500.0]))
    # 0.01 × mark 100,500 × 0.01 %
    assert run.broker.wallet == pytest.approx(1_000 + cash)
    assert run.broker.funding_paid == pytest.approx(-cash)


def test_funding_uses_bar_open_times_mark_ratio_when_no_mark_at_settlement() -> None:
    run = run_bars([flat(100_000)] * 6, {0: buy(0.01)}, funding=([FUND_AT], [0.0001], [float("nan")]),
                   mark_ratio=1.001)
    assert run.broker.wallet == pytest.approx(1_000 - 0.01 * 100_100 * 0.0001)


def test_funding_only_for_positions_held_at_the_settlement() -> None:
    # Entry filled at the settlement bar's open is charged (freqtrade's 15 s rule); exit at it is not.
    entering = run_bars([flat(100_000)] * 6, {2: buy(0.01)}, funding=([FUND_AT], [0.0001], [100_000.0]))
    assert entering.broker.wallet == pytest.approx(1_000 - 0.1)
    leaving = run_bars([flat(100_000)] * 6, {0: buy(0.01), 2: lambda s, d: s.close_position(d)},
                       funding=([FUND_AT], [0.0001], [100_000.0]))
    assert leaving.broker.wallet == pytest.approx(1_000)
    late = run_bars([flat(100_000)] * 6, {3: buy(0.01)}, funding=([FUND_AT], [0.0001], [100_000.0]))
    assert late.broker.wallet == pytest.approx(1_000)


# --- liquidation ----------------------------------------------------------------------------------------------
def test_liquidation_inside_a_bar_at_the_formula_price() -> None:
    # Wallet 40 backs 0.01 BTC at 100,000 (25x): LP = 96,385.54 (hand-computed in test_futures_model).
    lp = (40 - 0.01 * 100_000) / (0.01 * 0.004 - 0.01)
    near = [flat(100_000), flat(100_000), (99_000, 99_100, lp + 5, 97_000), flat(97_000)]
    run = run_bars(near, {0: buy(0.01)}, wallet=40.0)
    assert run.broker.liquidations == 0
    through = [flat(100_000), flat(100_000), (99_000, 99_100, 96_000, 97_000), flat(97_000)]
    run = run_bars(through, {0: buy(0.01)}, wallet=40.0)
    b = run.broker
    assert b.liquidations == 1
    (t,) = b.trades
    assert t.liquidated and t.exit_reason == "liquidation"
    assert t.exit_price == pytest.approx(lp)
    # Margin left at LP is the maintenance margin (3.855); the 1.25 % fee (12.05) is capped at it.
    assert t.liquidation_fee == pytest.approx(0.01 * lp * 0.004)
    assert b.wallet == pytest.approx(0.0, abs=1e-9)


def test_cross_wallet_moves_the_liquidation_price() -> None:
    # Wallet 100: LP = (100 − 1,000) / (0.00004 − 0.01) = 90,361.45.
    lp = (100 - 1_000) / (0.01 * 0.004 - 0.01)
    assert lp == pytest.approx(90_361.45, abs=0.01)
    bars = [flat(100_000), flat(100_000), (95_000, 95_000, 91_000, 92_000), (92_000, 92_000, 90_000, 90_500),
            flat(90_500)]
    run = run_bars(bars, {0: buy(0.01)}, wallet=100.0)
    assert run.broker.liquidations == 1
    assert run.broker.trades[0].exit_price == pytest.approx(lp)
    assert run.broker.trades[0].close_ms == T0 + 3 * MIN


def test_short_liquidation_on_the_high() -> None:
    lp = (40 + 0.01 * 100_000) / (0.01 * 0.004 + 0.01)  # 103,585.66
    bars = [flat(100_000), flat(100_000), (101_000, 104_000, 100_900, 101_000), flat(101_000)]
    run = run_bars(bars, {0: sell(0.01)}, wallet=40.0)
    assert run.broker.liquidations == 1
    assert run.broker.trades[0].exit_price == pytest.approx(lp)


def test_liquidation_uses_mark_not_last() -> None:
    # Mark 0.2 % above last: a long's mark low stays above LP although the last-price low dips below it.
    lp = (40 - 0.01 * 100_000) / (0.01 * 0.004 - 0.01)
    bars = [flat(100_000), flat(100_000), (99_000, 99_000, lp * 0.999, 99_000), flat(99_000)]
    run = run_bars(bars, {0: buy(0.01)}, wallet=40.0, mark_ratio=1.002)
    assert run.broker.liquidations == 0
    run = run_bars(bars, {0: buy(0.01)}, wallet=40.0, mark_ratio=1.0)
    assert run.broker.liquidations == 1


def test_gap_through_liquidation_closes_at_the_open_and_insurance_absorbs_the_deficit() -> None:
    bars = [flat(100_000), flat(100_000), (95_000, 95_500, 94_000, 95_000), flat(95_000)]
    run = run_bars(bars, {0: buy(0.01)}, wallet=40.0)
    b = run.broker
    assert b.liquidations == 1
    assert b.trades[0].exit_price == pytest.approx(95_000)
    assert b.wallet == 0.0
    assert b.insurance_covered == pytest.approx(0.01 * 5_000 - 40)


def test_stop_above_liquidation_price_fires_first() -> None:
    bars = [flat(100_000), flat(100_000), (99_000, 99_100, 95_000, 96_000), flat(96_000)]
    run = run_bars(bars, {0: lambda s, d: s.open_position(d, 1, 0.01, 97_000)}, wallet=40.0)
    assert run.broker.liquidations == 0
    assert run.fills("stop") == [(97_000.0, -0.01)]
    assert run.broker.wallet == pytest.approx(10.0)


def test_liquidation_cancels_open_orders() -> None:
    bars = [flat(100_000), flat(100_000), (99_000, 99_100, 96_000, 97_000), flat(97_000)]
    run = run_bars(bars, {0: lambda s, d: s.open_position(d, 1, 90_000, [(110_000, 0.01)]) if False else
                          s.open_position(d, 1, 0.01, 90_000, [(110_000, 0.01)])}, wallet=40.0)
    assert run.broker.liquidations == 1
    assert "Canceled" in run.statuses("stop") and "Canceled" in run.statuses("tp1")


def test_cross_margin_other_positions_move_the_liquidation_price() -> None:
    """BTC's LP includes ETH's maintenance margin and unrealized loss (the FAQ's TMM1 and UPNL1 terms)."""
    btc = [flat(100_000), flat(100_000), flat(100_000), flat(100_000), (99_000, 99_000, 86_000, 87_000),
           flat(87_000)]
    eth = [flat(2_000), flat(2_000), flat(1_950), flat(1_950), flat(1_950), flat(1_950)]

    def enter(s, d) -> None:
        s.buy(data=s.getdatabyname("BTC/USDT:USDT"), size=0.01, tag="btc")
        s.buy(data=s.getdatabyname("ETH/USDT:USDT"), size=1.0, tag="eth")

    run = run_bars({"BTC/USDT:USDT": btc, "ETH/USDT:USDT": eth}, {0: enter}, wallet=200.0)
    # W 200, ETH MM 1 × 1,950 × 0.4 % = 7.8, ETH uPnL −50 → (200 − 7.8 − 50 − 1,000) / (0.01 × 0.004 − 0.01)
    lp = (200 - 7.8 - 50 - 1_000) / (0.01 * 0.004 - 0.01)
    assert lp == pytest.approx(86_124.5, abs=0.1)
    b = run.broker
    btc_t, eth_t = b.trades
    assert btc_t.pair == "BTC/USDT:USDT" and btc_t.liquidated and btc_t.exit_price == pytest.approx(lp)
    # What is left after BTC's loss and liquidation fee no longer carries ETH's maintenance margin: ETH's own LP
    # is now above its price, so ETH goes next, at the mark then (1,950) — the cascade of a cross account.
    wallet_after_btc = 200 - 0.01 * (100_000 - lp) - min(0.01 * lp * 0.0125, 200 - 0.01 * (100_000 - lp) - 50)
    eth_lp = (wallet_after_btc - 2_000) / (0.004 - 1)
    assert eth_lp > 1_950
    assert eth_t.pair == "ETH/USDT:USDT" and eth_t.liquidated and eth_t.exit_price == pytest.approx(1_950)
    assert b.liquidations == 2
    # Alone, the same BTC long would survive the 86,000 low (its LP would be 80,321).
    alone = run_bars(btc, {0: buy(0.01)}, wallet=200.0)
    assert alone.broker.liquidations == 0


def test_margin_is_checked_at_placement_including_resting_orders() -> None:
    # Wallet 100: a 0.015 BTC market entry posts 60; a second one would need 60 more than the 40 left.
    def two(s, d) -> None:
        s.buy(data=d, size=0.015, tag="first")
        s.buy(data=d, size=0.015, tag="second")

    run = run_bars([flat(100_000)] * 3, {0: two}, wallet=100.0)
    assert run.fills("first") == [(100_000.0, 0.015)]
    assert run.statuses("second") == ["Submitted", "Margin"]
    # A buy limit above the mark carries its open loss (FAQ-COST): at 104,000 with the mark at 100,000,
    # cost = 0.009 × 104,000 / 25 + 0.009 × 4,000 = 73.44 > 70 available.
    run = run_bars([flat(100_000)] * 3, {0: buy(0.009, exectype=bt.Order.Limit, price=104_000.0, tag="lim")},
                   wallet=70.0)
    assert run.statuses("lim")[-1] == "Margin"
