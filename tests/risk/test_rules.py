"""The risk rules as pure functions (trader/risk/rules.py) and the RiskBook's memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trader.risk.book import HOUR_MS, RiskBook
from trader.risk.gate import CombinedGate, MarketVerdict
from trader.risk.limits import RISK_PARAM_NAMES, RiskLimits, limits_from_params
from trader.risk.rules import (
    EntryInputs,
    OpenRisk,
    account_tier_risk,
    correlation,
    decide_entry,
    frequency_factor,
    percentile_rank,
)

TIERS = ((10_000.0, 0.75), (50_000.0, 0.5), (250_000.0, 0.3))


def test_account_tiers_are_marginal_and_never_lower_the_usdt_at_risk() -> None:
    assert account_tier_risk(500.0, 0.02, TIERS) == 0.02
    assert account_tier_risk(10_000.0, 0.02, TIERS) == 0.02
    assert account_tier_risk(20_000.0, 0.02, TIERS) == pytest.approx((200 + 150) / 20_000)
    wallets = np.linspace(1_000, 1_000_000, 2_000)
    usdt = [w * account_tier_risk(w, 0.02, TIERS) for w in wallets]
    assert all(b >= a for a, b in zip(usdt, usdt[1:], strict=False))  # more wallet, never fewer USDT at risk
    shares = [account_tier_risk(w, 0.02, TIERS) for w in wallets]
    assert all(b <= a + 1e-15 for a, b in zip(shares, shares[1:], strict=False))  # the share only falls


def test_frequency_scales_the_budget_down_to_a_floor() -> None:
    lim = RiskLimits()
    assert frequency_factor(6.0, lim) == 1.0
    assert frequency_factor(12.0, lim) == 0.5
    assert frequency_factor(1_000.0, lim) == lim.budget_floor


def test_percentile_rank_is_a_mid_rank() -> None:
    assert percentile_rank(np.full(10, 2.0), 2.0) == 0.5
    assert percentile_rank(np.array([1.0, 2.0, 3.0, np.nan]), 3.0) == pytest.approx(5 / 6)
    assert math.isnan(percentile_rank(np.array([np.nan]), 1.0))


def test_correlation_uses_consecutive_common_hours_only() -> None:
    a = {h: 100.0 * 1.01 ** ((-1) ** h * h) for h in range(30)}
    b = {h: 2 * v for h, v in a.items()}
    assert correlation(a, b, 12) == pytest.approx(1.0)
    assert math.isnan(correlation(a, b, 40))  # not enough common returns
    holes = {h: v for h, v in b.items() if h % 2}  # no two consecutive hours: no returns at all
    assert math.isnan(correlation(a, holes, 2))


def _x(**kw) -> EntryInputs:
    base = dict(pair="BTC/USDT:USDT", coin="BTC", side=1, base_risk=0.02, wallet=10_000.0, peak_wallet=10_000.0,
                losses_in_a_row=0, trades_per_day=1.0, vol_rank=0.5, regime="unknown", open_positions=(),
                correlations={})
    base.update(kw)
    return EntryInputs(**base)


def test_no_rule_acts_on_a_plain_entry() -> None:
    d = decide_entry(_x(), RiskLimits())
    assert d.risk == 0.02 and d.hits == () and d.blocked is None


def test_rules_combine_and_name_the_binding_cap() -> None:
    lim = RiskLimits()
    eth = OpenRisk("ETH/USDT:USDT", "ETH", 1, 0.09)
    d = decide_entry(_x(open_positions=(eth,), losses_in_a_row=3, vol_rank=0.95), lim)
    # 2 % × 0.5 (streak) × 0.5 (volatility) = 0.5 %, within the 1 % left of the total budget.
    assert d.risk == pytest.approx(0.005) and [h.rule for h in d.hits] == ["loss_streak", "volatility"]
    d = decide_entry(_x(open_positions=(eth,)), lim)
    assert d.risk == pytest.approx(0.01) and d.hits[-1].rule == "total_risk" and d.hits[-1].effect == "shrunk"
    crumbs = OpenRisk("ETH/USDT:USDT", "ETH", 1, 0.097)
    d = decide_entry(_x(open_positions=(crumbs,)), lim)
    assert d.risk == 0 and d.blocked.rule == "total_risk"  # 0.3 % left is less than a quarter of 2 %
    d = decide_entry(_x(open_positions=(OpenRisk("ETH/USDT:USDT", "ETH", 1, 0.05),), peak_wallet=20_000.0), lim)
    # 50 % below the peak: the budget halves to 5 %, all of it open; the drawdown, not the budget, is named.
    assert d.risk == 0 and d.blocked.rule == "drawdown" and d.blocked.values["limit"] == pytest.approx(0.05)


def test_opposite_sides_are_not_blocked_by_correlation() -> None:
    eth = OpenRisk("ETH/USDT:USDT", "ETH", -1, 0.02)
    d = decide_entry(_x(open_positions=(eth,), correlations={"ETH/USDT:USDT": 0.99}), RiskLimits())
    assert d.blocked is None


def test_limits_come_from_parameters_with_every_name() -> None:
    lim = limits_from_params({"loss_streak": 5, "regime_budget": {"volatile": 0.2}})
    assert lim.loss_streak == 5 and lim.regime_factor("volatile") == 0.2 and lim.regime_factor("ranging") == 1.0
    assert set(RISK_PARAM_NAMES) == set(RiskLimits.__dataclass_fields__)


def test_the_book_remembers_streaks_peaks_and_hours() -> None:
    book = RiskBook(RiskLimits(correlation_hours=24))
    for h in range(40):
        book.observe("BTC/USDT:USDT", h * HOUR_MS, 100.0 + h)
        book.observe("BTC/USDT:USDT", h * HOUR_MS + 300_000, 100.0 + h)  # not on the hour: not kept
    assert len(book.closes["BTC/USDT:USDT"]) == 25  # the window and one more for its first return
    book.see_wallet(1_000.0)
    book.opened("BTC/USDT:USDT", 1, 0.02)
    book.closed("BTC/USDT:USDT", -10.0, 990.0)
    book.opened("BTC/USDT:USDT", 1, 0.02)
    book.closed("BTC/USDT:USDT", 0.0, 990.0)  # break-even: neither ends nor extends the streak
    assert book.losses_in_a_row == 1 and book.peak_wallet == 1_000.0
    book.opened("BTC/USDT:USDT", 1, 0.02)
    book.cancelled("BTC/USDT:USDT")  # never filled: no trade, no open risk
    assert not book.open and len(book.entries_ms) == 2


def test_the_sink_is_told_once_per_rule_pair_and_quiet_period() -> None:
    told = []
    book = RiskBook(RiskLimits(max_open_trades=1), sink=told.append)
    book.opened("ETH/USDT:USDT", 1, 0.02)
    for minute in range(30):
        book.observe("BTC/USDT:USDT", minute * 60_000 + 60_000, 100.0)
        assert not book.slot_free("BTC/USDT:USDT", 1)
    assert book.counts["max_open_trades"]["blocked"] == 30 and len(told) == 1
    book.observe("BTC/USDT:USDT", 2 * HOUR_MS, 100.0)
    book.slot_free("BTC/USDT:USDT", 1)
    assert len(told) == 2


def test_combined_gates_take_the_strictest() -> None:
    class G:
        def __init__(self, v: MarketVerdict) -> None:
            self.v = v

        def entry(self, pair: str, at_ms: int) -> MarketVerdict:
            return self.v

    gate = CombinedGate([G(MarketVerdict(0.5, "liquidity")), G(MarketVerdict(0.0, "maintenance")), G(MarketVerdict())])
    assert gate.entry("BTC/USDT:USDT", 0).rule == "maintenance"
