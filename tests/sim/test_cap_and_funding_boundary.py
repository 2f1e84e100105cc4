"""Issue 11 on the simulator: the bracket cap (−2027) at placement, and funding at a settlement instant.

The same scenarios as tests/backtest/test_cap_and_funding_boundary.py; the backtest and the simulator must agree.
BTCUSDT at 100x: maxNotionalValue 600,000 USDT; mark held at 100,000, so the cap is 6 BTC of position plus resting
opening orders on the side of the new order.
"""

from __future__ import annotations

from decimal import Decimal as D

import ccxt
import pytest

from tests.sim.conftest import BTC, START, hold_price, sim_config
from trader.sim import SimulatorThread
from trader.sim.client import make_client


@pytest.fixture
def long5():
    """A simulator with a 5 BTC long at 100x (mark 100,000)."""
    with SimulatorThread(sim_config(balance=D("100000"))) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        assert ex.set_leverage(100, BTC)["maxNotionalValue"] == "600000"
        hold_price(sim, 100_000)
        ex.create_order(BTC, "market", "buy", 5)
        yield sim, ex


def _position(ex) -> D:
    rows = ex.fetch_positions([BTC])
    return D(rows[0]["info"]["positionAmt"]) if rows else D(0)


def _limit(ex, side: str, qty: float, price: float, **params):
    return ex.create_order(BTC, "limit", side, qty, price, params)


# (name, orders as (side, qty, kind, params), whether the last one is refused with -2027) — as in the backtest.
CAP_CASES = [
    ("adding beyond the cap", [("buy", 2.0, "market", {})], True),
    ("adding up to the cap", [("buy", 1.0, "market", {})], False),
    ("resting opening orders count", [("buy", 0.5, "limit", {}), ("buy", 0.8, "market", {})], True),
    ("the same order without them", [("buy", 0.8, "market", {})], False),
    ("reduce-only orders are exempt", [("sell", 2.0, "market", {"reduceOnly": True})], False),
    ("a reversal within the cap", [("sell", 11.0, "market", {})], False),
    ("a reversal beyond it", [("sell", 11.1, "market", {})], True),
]


@pytest.mark.parametrize(("name", "orders", "refused"), CAP_CASES, ids=[c[0] for c in CAP_CASES])
def test_position_cap_is_checked_at_placement(long5, name: str, orders, refused: bool) -> None:
    sim, ex = long5
    *first, (side, qty, kind, params) = orders
    for s, q, k, p in first:
        _limit(ex, s, q, 99_000, **p) if k == "limit" else ex.create_order(BTC, k, s, q, None, p)
    before = _position(ex)
    if refused:
        with pytest.raises(ccxt.ExchangeError, match="-2027"):
            ex.create_order(BTC, kind, side, qty, None, params)
        assert _position(ex) == before
    else:
        ex.create_order(BTC, kind, side, qty, None, params)
        assert _position(ex) == before + (D(str(qty)) if side == "buy" else -D(str(qty)))


def test_a_stop_entry_is_checked_when_it_triggers(long5) -> None:
    sim, ex = long5
    ex.create_order(BTC, "market", "buy", 2, None, {"stopPrice": 100_500})  # accepted: an algo order
    hold_price(sim, 101_000)
    assert _position(ex) == D(5)
    statuses = sim.call(lambda s: [a.status for a in s.exchange.algos.values()])
    assert statuses == ["REJECTED"]


# --- funding at the settlement instant -------------------------------------------------------------------------
SETTLEMENT = START - 60_000 + 8 * 3_600_000  # 08:00:00.000 UTC


@pytest.fixture
def at_start():
    with SimulatorThread(sim_config()) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        hold_price(sim, 100_000)
        yield sim, ex


def _step_to(sim, t: int) -> None:
    now = sim.call(lambda s: s.clock.now_ms())
    assert sim.step(t - now) == t


def _funding_rows(ex) -> list[int]:
    return [r["timestamp"] for r in ex.fetch_funding_history(BTC)]


def test_position_opened_exactly_at_the_settlement_pays(at_start) -> None:
    sim, ex = at_start
    _step_to(sim, SETTLEMENT)
    ex.create_order(BTC, "market", "buy", 0.01)  # fills at 08:00:00.000
    assert ex.fetch_my_trades(BTC)[-1]["timestamp"] == SETTLEMENT
    sim.step(1000)
    (row,) = ex.fetch_funding_history(BTC)
    rate = D(str(ex.fetch_funding_rate_history(BTC, since=SETTLEMENT, limit=1)[0]["info"]["fundingRate"]))
    assert row["timestamp"] == SETTLEMENT
    assert D(row["info"]["income"]) == (-D("0.01") * D("100000") * rate).quantize(D("0.00000001"))


def test_position_closed_exactly_at_the_settlement_does_not_pay(at_start) -> None:
    sim, ex = at_start
    ex.create_order(BTC, "market", "buy", 0.01)
    _step_to(sim, SETTLEMENT)
    ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # closes at 08:00:00.000
    assert ex.fetch_my_trades(BTC)[-1]["timestamp"] == SETTLEMENT
    sim.step(1000)
    assert _funding_rows(ex) == []


def test_position_open_across_the_settlement_pays(at_start) -> None:
    sim, ex = at_start
    ex.create_order(BTC, "market", "buy", 0.01)
    _step_to(sim, SETTLEMENT - 1)
    assert _funding_rows(ex) == []
    sim.step(2)
    ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # closed 1 ms after
    assert _funding_rows(ex) == [SETTLEMENT]


def test_settlement_waits_for_the_instant_to_pass_then_is_paid_once(at_start) -> None:
    sim, ex = at_start
    ex.create_order(BTC, "market", "buy", 0.01)
    _step_to(sim, SETTLEMENT)
    assert _funding_rows(ex) == []  # orders may still trade at 08:00:00.000
    sim.step(1)
    assert _funding_rows(ex) == [SETTLEMENT]
    sim.step(8 * 3_600_000)
    assert _funding_rows(ex) == [SETTLEMENT, SETTLEMENT + 8 * 3_600_000]
