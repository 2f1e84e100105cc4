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
