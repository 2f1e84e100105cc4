"""Every key of ``risk.liquidity``, ``risk.maintenance`` and ``execution`` changes what the market side does:
each set to an extreme changes an observed decision (a liquidity reading and what it allows, the hold of a tier,
the staged close, the maintenance state at a fixed time, the optimiser's plan for a fixed order). A new key with
no effect here fails the test."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from trader.config.schema import ExecutionConfig, LiquidityConfig, MaintenanceConfig, Settings
from trader.execution.market import market_settings
from trader.execution.optimiser import BookTop, plan_order
from trader.risk.liquidity import LiquidityReading, Tier, TierTracker, assess_book, decide

T = 1_746_057_600_000  # 2025-05-01T00:00Z


class Book:
    """Depth 450 k USDT within ±0.5 %, 300 k within ±0.1 %, spread 0.4 %."""

    def spread(self) -> Decimal:
        return Decimal("0.004")

    def depth_within(self, band: Decimal) -> Decimal:
        return Decimal(450_000) if band >= Decimal("0.005") else Decimal(300_000)


def observe(settings: Settings) -> tuple[Any, ...]:
    m = market_settings(settings)
    reading = assess_book("BTC/USDT:USDT", Book(), 500_000_000.0, m.liquidity)  # required 500 k at the default
    tracker = TierTracker(m.liquidity)
    tracker.update(dataclasses.replace(reading, tier=Tier.SEVERE), 0.0)
    held, _ = tracker.update(reading, 30.0)
    schedule = m.schedule()
    state = schedule.state(T)
    top = BookTop(Decimal(100), Decimal("100.03"), Decimal(40), Decimal(40))
    plan = plan_order("buy", Decimal(5), urgent=False, top=top, wallet=5_000.0, step=Decimal("0.001"),
                      min_notional=Decimal(5), rules=m.execution)
    big = plan_order("buy", Decimal(5), urgent=False, top=top, wallet=50_000.0, step=Decimal("0.001"),
                     min_notional=Decimal(5), rules=m.execution)
    mild = decide(reading.pair, m.liquidity, Tier.MILD, 0.7, 1.0, 1.0, None, "book").size_multiplier
    return (reading.tier, reading.size_multiplier, round(reading.health, 4), held.tier, mild,
            m.options.close_stages, m.options.close_stage_s, m.options.poll_s,
            state.phase, state.window, schedule.next_window(T), plan.style, plan.slices, big.slices,
            m.execution.slice_wait_s, m.execution.time_limit_s)


def key_paths() -> list[str]:
    out = []
    for prefix, model in (("risk.liquidity", LiquidityConfig), ("risk.maintenance", MaintenanceConfig),
                          ("execution", ExecutionConfig)):
        for name in model.model_fields:
            out.append(f"{prefix}.{name}")
    return out


EXTREME: dict[str, Any] = {
    "risk.liquidity.max_spread": 0.001,  # the 0.4 % spread now counts: health 0.25
    "risk.liquidity.depth_band": 0.001,  # half the depth counted
    "risk.liquidity.depth_share_of_volume": 0.01,  # ten times the required depth
    "risk.liquidity.levels": [0.99, 0.98, 0.97],
    "risk.liquidity.mild_size": 0.9,
    "risk.liquidity.hold_seconds": 0,
    "risk.liquidity.close_stages": 1,
    "risk.liquidity.close_stage_seconds": 60.0,
    "risk.maintenance.lead_minutes": 24 * 60,
    "risk.maintenance.poll_seconds": 3600,
    "risk.maintenance.windows": [{"start": "2025-05-01T06:00:00Z", "end": "2025-05-01T07:00:00Z"}],
    "execution.maker_min_spread": 0.05,
    "execution.slice_depth_share": 0.05,  # the small account splits too
    "execution.large_account_equity": 100_000.0,
    "execution.large_account_depth_share": 1.0,
    "execution.max_slices": 1,
    "execution.slice_wait_seconds": 60.0,
    "execution.time_limit_seconds": 600.0,
}
# Together with a window (lead_minutes alone has no window to lead).
WITH: dict[str, dict[str, Any]] = {
    "risk.maintenance.lead_minutes": {"risk.maintenance.windows": [{"start": "2025-05-01T06:00:00Z",
                                                                    "end": "2025-05-01T07:00:00Z"}]},
}


def _settings(values: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {}
    for path, value in values.items():
        node = data
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return Settings(**data)


def test_every_market_key_has_a_probe() -> None:
    assert sorted(key_paths()) == sorted(EXTREME)


@pytest.mark.parametrize("path", sorted(EXTREME))
def test_each_market_key_changes_a_decision(path: str) -> None:
    base_values = dict(WITH.get(path, {}))
    base = observe(_settings(base_values))
    other = observe(_settings({**base_values, path: EXTREME[path]}))
    assert base != other, f"{path} set to {EXTREME[path]!r} changed nothing: {base}"


def test_the_probe_scenario_is_what_it_says() -> None:
    tier, size, health, held, *_rest = observe(Settings())
    assert tier is Tier.NORMAL and size == 1.0 and health == pytest.approx(0.9)
    assert isinstance(LiquidityReading, type) and issubclass(LiquidityConfig, BaseModel)


def test_a_short_book_is_measured_where_it_reaches() -> None:
    """A snapshot that reaches ±0.1 % of a ±0.5 % band: the depth there against a fifth of the requirement, not
    read as four fifths empty (which live would turn into a staged close of every position)."""
    from trader.exchange.orderbook import LocalOrderBook
    from trader.risk.liquidity import LiquidityRules, covered_band

    book = LocalOrderBook("BTCUSDT")
    book.load_snapshot({"lastUpdateId": 1, "bids": [["99.95", "1000"], ["99.9", "1000"]],
                        "asks": [["100.05", "1000"], ["100.1", "1000"]]})
    assert covered_band(book, 0.005) == pytest.approx(0.001)
    rules = LiquidityRules(depth_share_of_volume=0.001)
    reading = assess_book("BTC/USDT:USDT", book, 400_000_000.0, rules)  # full requirement 400 k, a fifth 80 k
    assert reading.required == pytest.approx(80_000.0) and reading.depth == pytest.approx(400_000.0)
    assert reading.tier is Tier.NORMAL
