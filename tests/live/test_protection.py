"""Entries, exchange-side stops and targets, stop hits and partial closes, through the real engine and sockets."""

from __future__ import annotations

from decimal import Decimal

import backtrader as bt
from sqlalchemy import select

from tests.live.conftest import (
    BTC,
    MINUTE,
    OneShot,
    make_engine_for,
    position_amt,
    sim_state,
    step_minutes,
    wait_until,
)
from trader.live.orders import DeskOptions
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
        fills = [e for e in rec.events if e.kind == "order_filled"]
        # The stop's sell closed a long: every fill of the trade is told as long (it was "short" once the book went).
        assert {e.purpose for e in fills} >= {"entry", "stop"} and {e.side for e in fills} == {"long"}
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


def test_moving_the_stop_places_the_new_one_before_the_old_goes(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "breakeven": True})
    calls: list[tuple[str, str]] = []
    engine.start()
    client = engine.client
    create, cancel = client.create_order, client.cancel_order

    async def traced_create(request, **kwargs):
        calls.append(("create", request.client_order_id))
        return await create(request, **kwargs)

    async def traced_cancel(pair, order_id, *, algo):
        calls.append(("cancel", order_id))
        return await cancel(pair, order_id, algo=algo)

    client.create_order, client.cancel_order = traced_create, traced_cancel
    try:
        _entered(sim, engine)
        old = next(a for a in _algos(sim) if a["orderType"] == "STOP_MARKET")
        tp = next(a for a in _algos(sim) if a["orderType"] == "TAKE_PROFIT_MARKET")
        sim.call(lambda s: s.set_price(BTC, float(tp["triggerPrice"]) * 1.001))
        step_minutes(sim, engine, 1)
        algos = _algos(sim)
        assert position_amt(sim) == Decimal("0.005")
        assert [a["orderType"] for a in algos] == ["STOP_MARKET"]
        new = algos[0]
        assert new["clientAlgoId"] != old["clientAlgoId"] and new["clientAlgoId"].endswith("-stop-1")
        entry = float(sim_state(sim)["positions"][0]["entry"])
        assert abs(float(new["triggerPrice"]) - entry) <= 0.1
        moved = [e for e in rec.events if e.kind == "stop_moved"]
        assert len(moved) == 1 and moved[0].new_price == Decimal(new["triggerPrice"])
        # The strategy cancelled first and then submitted; on the exchange the new stop went live first.
        assert calls.index(("create", new["clientAlgoId"])) < calls.index(("cancel", str(old["algoId"])))
        assert ("stop", "Canceled", 0.0) in OneShot.seen
        assert _cancelled_algo_ids(sim) == [old["clientAlgoId"]]
    finally:
        engine.stop()


def _cancelled_algo_ids(sim) -> list[str]:
    return sim.call(lambda s: [a.client_algo_id for a in s.exchange.algos.values() if a.status == "CANCELED"])


def test_a_stop_that_cannot_be_placed_closes_the_position(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    # A long's "stop" above the market would trigger at once: Binance answers -2021 and the desk must not leave
    # the position naked.
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "stop_move": -0.01, "tp_qty": 0})
    engine.start()
    try:
        step_minutes(sim, engine, 3)
        assert position_amt(sim) == 0 and _algos(sim) == []
        assert any(e.kind == "risk_action" and e.action == "emergency_close" for e in rec.events)
        assert ("stop", "Rejected", 0.0) in OneShot.seen
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0
    finally:
        engine.stop()


def test_restart_keeps_the_trade_and_never_duplicates_orders(sim, sessions) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, _ = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE}, sessions=sessions)
    engine.start()
    try:
        _entered(sim, engine)
    finally:
        engine.stop()
    before = sim_state(sim)
    again, rec = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62}, sessions=sessions)
    again.start()
    try:
        step_minutes(sim, again, 2)
        after = sim_state(sim)
        assert after["orders"] == before["orders"]  # nothing was sent again
        assert sorted(a["clientAlgoId"] for a in after["open_algo_orders"]) == \
            sorted(a["clientAlgoId"] for a in before["open_algo_orders"])
        assert again.broker.getposition(again.feeds[BTC]).size == 0.01
        stop = next(a for a in after["open_algo_orders"] if a["orderType"] == "STOP_MARKET")
        sim.call(lambda s: s.set_price(BTC, float(stop["triggerPrice"]) * 0.998))
        step_minutes(sim, again, 1)
        assert position_amt(sim) == 0 and _algos(sim) == []
        with transaction(sessions) as s:
            trades = s.scalars(select(Trade)).all()
            assert len(trades) == 1 and trades[0].status == "closed" and trades[0].exit_reason == "stop"
        assert any(e.kind == "stop_hit" for e in rec.events)
    finally:
        again.stop()


class NakedEntry(OneShot):
    """Buys at market without any stop: the desk's safety net must add one."""

    def next(self) -> None:
        if not self.done and self.data.bar_is_live:
            self.done = True
            self.buy(data=self.data, size=0.01, tag="entry")


def test_an_entry_without_a_stop_gets_the_fallback_stop(sim) -> None:
    engine, rec = make_engine_for(sim, NakedEntry)
    engine.start()
    try:
        step_minutes(sim, engine, 2)
        assert position_amt(sim) == Decimal("0.01")
        algos = _algos(sim)
        assert [a["orderType"] for a in algos] == ["STOP_MARKET"] and algos[0]["closePosition"] is True
        entry = float(sim_state(sim)["positions"][0]["entry"])
        assert abs(float(algos[0]["triggerPrice"]) / entry - (1 - 0.8 / 25)) < 1e-4
    finally:
        engine.stop()


def test_unknown_outcome_of_an_entry_is_resolved_and_the_fill_protected(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "tp_qty": 0})
    engine.start()
    try:
        step_minutes(sim, engine, 1)
        # Every answer now says "-1007 timeout, status unknown" although the exchange executes the order.
        sim.call(lambda s: s.set_faults({"error_share": 1.0, "error_kinds": ["-1007"], "seed": 1}))
        sim.step(MINUTE)
        wait_until(lambda: sim.call(lambda s: len(s.exchange.orders)) >= 1, 10)
        sim.call(lambda s: s.set_faults({"error_share": 0.0}))
        wait_until(lambda: [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"], 15)
        engine.wait_idle(15)
        assert position_amt(sim) == Decimal("0.01")
        assert sim.call(lambda s: sum(1 for o in s.exchange.orders.values() if o.client_id.endswith("entry-0"))) == 1
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0.01
        assert ("entry", "Completed", 0.01) in OneShot.seen
    finally:
        engine.stop()


def test_account_check_brings_a_drifted_position_back_in_step(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, _ = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "tp_qty": 0})
    engine.start()
    try:
        _entered(sim, engine)
        desk = engine.desk
        # Pretend an update was lost: the engine (desk mirror and strategy) says flat, the exchange holds 0.01.
        engine.host.call(_set_mirror(desk, BTC, Decimal(0)))
        feed = engine.feeds[BTC]
        engine.broker.commands.put(lambda: engine.broker.positions[feed].set(0.0, 0.0))
        engine.broker.wake.set()
        engine.wait_idle()
        assert engine.broker.getposition(feed).size == 0
        assert engine.host.call(desk.check_account()) is False
        engine.wait_idle()
        assert desk.positions[BTC][0] == Decimal("0.01")
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0.01
        assert engine.host.call(desk.check_account()) is True
        assert [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"]  # still exactly one stop
    finally:
        engine.stop()


async def _set_mirror(desk, pair: str, size: Decimal) -> None:
    desk.positions[pair] = (size, Decimal(0))


class LimitOnce(OneShot):
    """A resting limit entry below the market, with its stop as a child."""

    def next(self) -> None:
        d = self.data
        if self.done or not d.bar_is_live:
            return
        self.done = True
        ref = d.close[0]
        self.entry = self.buy(data=d, size=0.01, exectype=bt.Order.Limit, price=round(ref * 0.997, 1),
                              transmit=False, tag="entry")
        self.stop_order = self.sell(data=d, size=0.01, exectype=bt.Order.Stop, price=round(ref * 0.98, 1),
                                    parent=self.entry, close_position=True, tag="stop")


def test_a_limit_entry_rests_then_fills_and_gets_its_stop(sim) -> None:
    engine, rec = make_engine_for(sim, LimitOnce)
    engine.start()
    try:
        step_minutes(sim, engine, 2)
        opened = sim_state(sim)["open_orders"]
        assert [(o["type"], o["side"]) for o in opened] == [("LIMIT", "BUY")] and _algos(sim) == []
        limit = float(opened[0]["price"])
        sim.call(lambda s: s.set_price(BTC, limit * 0.999))
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == Decimal("0.01")
        assert [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"]
        assert ("entry", "Completed", 0.01) in LimitOnce.seen
        fills = [e for e in rec.events if e.kind == "order_filled"]
        assert len(fills) == 1 and fills[0].price == Decimal(str(limit))  # a resting limit fills at its price
    finally:
        engine.stop()


def test_a_target_already_passed_is_taken_at_market(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    # A long's target below the market: TAKE_PROFIT_MARKET would trigger at once (-2021).
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "tp_move": -0.01})
    engine.start()
    try:
        step_minutes(sim, engine, 2)
        assert position_amt(sim) == Decimal("0.005")
        assert [a["orderType"] for a in _algos(sim)] == ["STOP_MARKET"]
        assert ("tp1", "Completed", -0.005) in OneShot.seen
        assert [e.purpose for e in rec.events if e.kind == "order_filled"] == ["entry", "take_profit"]
    finally:
        engine.stop()


def test_mark_price_stops_trigger_and_are_followed(sim) -> None:
    t0 = sim.call(lambda s: s.clock.now_ms())
    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": t0 + MINUTE, "tp_qty": 0},
                                  desk=DeskOptions(working_type="MARK_PRICE"))
    engine.start()
    try:
        _entered(sim, engine)
        stop = _algos(sim)[0]
        assert stop["workingType"] == "MARK_PRICE"
        sim.call(lambda s: s.set_price(BTC, float(stop["triggerPrice"]) * 0.995))
        step_minutes(sim, engine, 1)
        assert position_amt(sim) == 0
        assert ("stop", "Completed", -0.01) in OneShot.seen
        assert any(e.kind == "stop_hit" for e in rec.events)
    finally:
        engine.stop()
