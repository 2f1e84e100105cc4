"""Entries, exchange-side stops and targets, stop hits and partial closes, through the real engine and sockets."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from tests.live.conftest import BTC, MINUTE, OneShot, make_engine_for, position_amt, sim_state, step_minutes
from trader.persistence.database import transaction
from trader.persistence.models import Fill, Order, Trade


def _algos(sim) -> list[dict]:
    return sim_state(sim)["open_algo_orders"]


def test_entry_fill_places_stop_then_target_on_the_exchange(sim, sessions) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE}, sessions=sessions)
    engine.start()
    try:
        step_minutes(sim, engine, 3)
        assert position_amt(sim) == Decimal("0.01")
        algos = sorted(_algos(sim), key=lambda a: a["orderType"])
        assert [a["orderType"] for a in algos] == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
        stop, tp = algos
        assert stop["closePosition"] is True and stop["side"] == "SELL"
        assert tp["reduceOnly"] is True and Decimal(tp["quantity"]) == Decimal("0.005")
        entry_price = Decimal(sim_state(sim)["positions"][0]["entry"])
        assert Decimal(stop["triggerPrice"]) < entry_price < Decimal(tp["triggerPrice"])
        # The stop went out before the target, both after the entry.
        placed = [e for e in rec.events if e.kind == "order_placed"]
        assert [e.purpose for e in placed] == ["entry", "stop", "take_profit"]
        assert all(e.client_order_id.startswith("bsm-") for e in placed)
        assert ("entry", "Completed", 0.01) in OneShot.seen
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0.01
        with transaction(sessions) as s:
            trade = s.scalars(select(Trade)).one()
            orders = s.scalars(select(Order).order_by(Order.id)).all()
            fills = s.scalars(select(Fill)).all()
            assert trade.status == "open" and trade.amount == Decimal("0.01") and trade.side == "long"
            assert trade.stop_price == Decimal(stop["triggerPrice"])
            assert [o.purpose for o in orders] == ["entry", "stop", "tp1"]
            assert {o.client_order_id for o in orders} == {e.client_order_id for e in placed}
            assert sum(f.amount for f in fills) == Decimal("0.01")
    finally:
        engine.stop()


def _entered(sim, engine, t0_offset: int = 1, **params) -> float:
    """Start stepping until OneShot has entered; returns the entry price on the exchange."""
    step_minutes(sim, engine, t0_offset + 1)
    assert position_amt(sim) != 0
    return float(sim_state(sim)["positions"][0]["entry"])


def test_stop_trigger_closes_the_position_and_the_strategy_hears_it(sim, sessions) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE}, sessions=sessions)
    engine.start()
    try:
        entry = _entered(sim, engine)
        stop = next(a for a in _algos(sim) if a["orderType"] == "STOP_MARKET")
        sim.call(lambda s: s.set_price(BTC, float(stop["triggerPrice"]) * 0.998))
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == 0
        assert _algos(sim) == []  # the target was cancelled once flat, the stop expired with the position
        assert ("stop", "Completed", -0.01) in OneShot.seen
        assert ("tp1", "Canceled", 0.0) in OneShot.seen
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0
        hits = [e for e in rec.events if e.kind == "stop_hit"]
        assert len(hits) == 1 and float(hits[0].price) < entry and hits[0].realized_pnl < 0
        with transaction(sessions) as s:
            trade = s.scalars(select(Trade)).one()
            assert trade.status == "closed" and trade.exit_reason == "stop" and trade.realized_pnl < 0
            assert trade.close_rate is not None and trade.fees > 0
        # The broker's wallet follows the account.
        engine.wait_idle()
        wallet = float(sim_state(sim)["account"]["wallet"])
        assert abs(engine.broker.wallet_balance() - wallet) < 0.01
    finally:
        engine.stop()


def test_target_hit_is_a_partial_close_and_the_stop_stays(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE})
    engine.start()
    try:
        _entered(sim, engine)
        tp = next(a for a in _algos(sim) if a["orderType"] == "TAKE_PROFIT_MARKET")
        sim.call(lambda s: s.set_price(BTC, float(tp["triggerPrice"]) * 1.001))
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == Decimal("0.005")
        assert [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"]
        assert ("tp1", "Completed", -0.005) in OneShot.seen
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0.005
        assert [e.purpose for e in rec.events if e.kind == "order_filled"] == ["entry", "take_profit"]
    finally:
        engine.stop()


def test_pause_refuses_entries_and_resume_allows_them(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, _ = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE})
    engine.start()
    try:
        engine.pause("test pause")
        step_minutes(sim, engine, 3)
        assert position_amt(sim) == 0 and _algos(sim) == []
        assert sim_state(sim)["orders"] == 0  # nothing reached the exchange
        assert ("entry", "Rejected", 0.0) in OneShot.seen
        assert ("stop", "Canceled", 0.0) in OneShot.seen
        assert any("entries blocked: test pause" in r for r in engine.broker.rejections)
        engine.resume()
        fut = engine.force_enter(BTC, "short", qty=0.01)
        assert fut.result(5) is True
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == Decimal("-0.01")
        assert [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"]
        assert engine.force_exit(BTC).result(5) is True
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == 0 and _algos(sim) == []
    finally:
        engine.stop()
