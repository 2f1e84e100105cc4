"""Issue 11: the bracket cap (−2027) is checked when an order is placed, and funding at a settlement instant.

The same scenarios run against the simulator in tests/sim/test_cap_and_funding_boundary.py; both must agree.

BTCUSDT at 100x: maxNotionalValue = 600,000 USDT (the 100x bracket's cap, binance-futures.md §1.4). Price and mark
100,000, so the cap is 6 BTC of position plus resting opening orders on the side of the new order.
"""

from __future__ import annotations

import backtrader as bt
import pytest
from backtest_helpers import MIN, T0, flat, run_bars

LEV = 100
WALLET = 100_000.0


def buy(qty: float, **kw):
    return lambda s, d: s.buy(data=d, size=qty, **kw)


def sell(qty: float, **kw):
    return lambda s, d: s.sell(data=d, size=qty, **kw)


def both(*fns):
    return lambda s, d: [fn(s, d) for fn in fns]


def _cap_run(script_bar1, bars=None):
    """Long 5 BTC from bar 1's open; ``script_bar1`` places the orders under test at bar 1's close."""
    return run_bars(bars or [flat(100_000)] * 5, {0: buy(5.0, tag="base"), 1: script_bar1},
                    wallet=WALLET, leverage=LEV)


# (name, orders placed with a 5 BTC long held, tag checked, its final status)
CAP_CASES = [
    ("adding beyond the cap", buy(2.0, tag="t"), "Rejected"),  # 7 BTC = 700,000 > 600,000
    ("adding up to the cap", buy(1.0, tag="t"), "Completed"),  # 6 BTC = 600,000: not above
    ("resting opening orders count",
     both(buy(0.5, exectype=bt.Order.Limit, price=99_000.0, tag="rest"), buy(0.8, tag="t")), "Rejected"),
    ("the same order without them", buy(0.8, tag="t"), "Completed"),
    ("reduce-only orders are exempt", sell(2.0, reduce_only=True, tag="t"), "Completed"),
    ("a reversal within the cap", sell(11.0, tag="t"), "Completed"),  # short 6 BTC
    ("a reversal beyond it", sell(11.1, tag="t"), "Rejected"),  # short 6.1 BTC
]


@pytest.mark.parametrize(("name", "script", "final"), CAP_CASES, ids=[c[0] for c in CAP_CASES])
def test_position_cap_is_checked_at_placement(name: str, script, final: str) -> None:
    run = _cap_run(script)
    statuses = run.statuses("t")
    assert statuses[-1] == final, (name, statuses, run.broker.rejections)
    if final == "Rejected":
        # Refused as the exchange answers the placement: never accepted, the reason carries Binance's code.
        assert statuses == ["Submitted", "Rejected"]
        reason = next(r for s, t, _, _, r in run.log if t == "t" and s == "Rejected")
        assert "(-2027)" in reason and "100x" in reason
    if name == "resting opening orders count":
        assert run.statuses("rest")[-1] == "Accepted"  # 5.5 BTC with the resting limit: allowed


def test_a_market_order_accepted_under_the_cap_is_not_dropped_at_its_fill() -> None:
    # 0.9 BTC more is 590,000 at placement; the next open is 115,000, so the fill makes 5.9 × 115,000 = 678,500.
    # Binance checked it when it was placed and fills it; so does the backtest now.
    bars = [flat(100_000), flat(100_000), flat(115_000), flat(115_000)]
    run = _cap_run(buy(0.9, tag="t"), bars)
    assert run.statuses("t")[-1] == "Completed" and not run.broker.rejections


def test_a_stop_entry_is_checked_when_it_triggers() -> None:
    # Conditional orders go to Binance's algo service: accepted when placed, checked (and refused) at the trigger.
    bars = [flat(100_000), flat(100_000), (100_000, 101_000, 100_000, 101_000), flat(101_000)]
    run = _cap_run(buy(2.0, exectype=bt.Order.Stop, price=100_500.0, tag="t"), bars)
    statuses = run.statuses("t")
    assert statuses[:2] == ["Submitted", "Accepted"] and statuses[-1] == "Margin"
    assert any("(-2027)" in r for r in run.broker.rejections)


# --- funding at the settlement instant -------------------------------------------------------------------------
# Rule (binance-futures.md §4): a settlement is paid by the position open at its timestamp, and a position opened
# in the first seconds of the funding hour counts as open (the 15 s rule). Fills stamped at the settlement instant
# come first: a position opened exactly then pays, one closed exactly then does not, one open across it pays.
FUND_AT = T0 + 3 * MIN  # bar 3's open
RATE, MARK = 0.0001, 100_000.0
PAID = 0.01 * MARK * RATE  # 0.1 USDT for 0.01 BTC long


def _funded(bars, script):
    return run_bars(bars, script, funding=([FUND_AT], [RATE], [MARK]))


def test_position_opened_exactly_at_the_settlement_pays() -> None:
    run = _funded([flat(100_000)] * 6, {2: buy(0.01)})  # market order: fills at bar 3's open = the settlement
    assert run.broker.trades == [] and run.broker.funding_paid == pytest.approx(PAID)


def test_position_closed_exactly_at_the_settlement_does_not_pay() -> None:
    run = _funded([flat(100_000)] * 6, {0: buy(0.01), 2: lambda s, d: s.close_position(d)})
    (trade,) = run.broker.trades
    assert trade.close_ms == FUND_AT and trade.funding == 0.0 and run.broker.funding_paid == 0.0


def test_position_open_across_the_settlement_pays() -> None:
    run = _funded([flat(100_000)] * 6, {0: buy(0.01), 4: lambda s, d: s.close_position(d)})
    (trade,) = run.broker.trades
    assert trade.open_ms < FUND_AT < trade.close_ms and trade.funding == pytest.approx(-PAID)


def test_stop_entry_gapped_through_at_the_settlement_open_pays() -> None:
    # The open jumps over the stop: it fills at the open, i.e. at the settlement instant, and so pays.
    bars = [flat(100_000)] * 3 + [flat(101_000)] * 3
    run = _funded(bars, {2: buy(0.01, exectype=bt.Order.Stop, price=100_500.0)})
    assert run.broker.funding_paid == pytest.approx(PAID)


def test_stop_exit_gapped_through_at_the_settlement_open_does_not_pay() -> None:
    # Before issue 11 a stop filled at the open was handled after the settlement and paid it; a market exit at
    # the same instant did not. Both follow the rule now.
    bars = [flat(100_000)] * 3 + [flat(99_000)] * 3
    run = _funded(bars, {0: buy(0.01), 2: sell(0.01, exectype=bt.Order.Stop, price=99_500.0, reduce_only=True)})
    (trade,) = run.broker.trades
    assert trade.close_ms == FUND_AT and trade.funding == 0.0


def test_entry_inside_the_settlement_bar_after_its_open_does_not_pay() -> None:
    # A stop reached inside bar 3 fills after the settlement instant (bars are a minute; the instant is unknown).
    bars = [flat(100_000)] * 3 + [(100_000, 101_000, 100_000, 101_000)] + [flat(101_000)] * 2
    run = _funded(bars, {2: buy(0.01, exectype=bt.Order.Stop, price=100_500.0)})
    assert run.broker.funding_paid == 0.0


def test_a_settlement_that_puts_the_open_beyond_the_liquidation_price_liquidates_at_that_open() -> None:
    # Wallet 40 backs 0.01 BTC at 100,000 (25x): LP 96,385.54. Bar 3 opens at 96,400, just above it; paying 1 %
    # funding there (9.64 USDT) lifts the LP to (30.36 − 1,000) / (0.01 × 0.004 − 0.01) ≈ 97,353: liquidated at
    # that open, not one bar later.
    bars = [flat(100_000)] * 3 + [flat(96_400)] * 3
    run = run_bars(bars, {0: buy(0.01)}, wallet=40.0, funding=([FUND_AT], [0.01], [96_400.0]))
    (trade,) = run.broker.trades
    assert trade.liquidated and trade.close_ms == FUND_AT
    assert trade.funding == pytest.approx(-9.64)
