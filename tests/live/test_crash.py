"""A real process kill between an entry's fill and its stop: the restarted engine puts the intended stop on the
exchange before anything else, and nothing is sent twice. The killed engine's rows were still only in its order
journal (trader/persistence/order_journal.py): the restart writes them to the database first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.live.conftest import BTC, MINUTE, OneShot, make_engine_for, position_amt, sim_state
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Order, Trade

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys, time
sys.path.insert(0, {repo!r})
from tests.live.conftest import OneShot, make_engine_for
from trader.live.desk import OrderDesk
from trader.persistence.database import make_engine, make_session_factory

class Sim:  # the parent's simulator, seen through its URLs
    rest_url, ws_url = {rest!r}, {ws!r}

async def die(self, entry):  # the entry has filled; the process dies before the stop goes out
    os._exit(9)

OrderDesk._protect = die
engine, _ = make_engine_for(Sim, OneShot, {{"enter_at_ms": {enter}}},
                            sessions=make_session_factory(make_engine({db!r})))
engine.start()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_killed_between_fill_and_stop_the_restart_places_the_intended_stop(sim, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    db = make_engine(url)
    upgrade(db)
    sessions = make_session_factory(db)
    t0 = sim.call(lambda s: s.clock.now_ms())
    code = CHILD.format(repo=str(REPO), rest=sim.rest_url, ws=sim.ws_url, enter=t0 + MINUTE, db=url)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(3):
            sim.step(MINUTE)
            time.sleep(0.3)
            if child.poll() is not None:
                break
        assert child.wait(20) == 9
    finally:
        if child.poll() is None:
            os.kill(child.pid, 9)
            child.wait(10)
    assert position_amt(sim) == Decimal("0.01") and sim_state(sim)["open_algo_orders"] == []  # naked
    with transaction(sessions) as s:
        assert s.scalars(select(Trade)).all() == []  # the process died before its first flush
    journal = (tmp_path / "crash.db-orders.journal").read_bytes().split(b"\0", 1)[0]  # zeros after the last line
    lines = [json.loads(line) for line in journal.decode().splitlines()]
    assert [e["order"]["purpose"] for e in lines] == ["entry"]
    intended = Decimal(lines[0]["trade"]["stop_price"])
    sent_before = sim_state(sim)["orders"]

    engine, rec = make_engine_for(sim, OneShot, {"enter_at_ms": 2**62}, sessions=sessions)
    engine.start()
    try:
        with transaction(sessions) as s:
            trade = s.scalars(select(Trade)).one()
            assert trade.status == "open" and trade.stop_price == intended and trade.id == lines[0]["trade"]["id"]
        algos = sim_state(sim)["open_algo_orders"]
        assert [a["orderType"] for a in algos] == ["STOP_MARKET"]
        assert Decimal(algos[0]["triggerPrice"]) == intended  # the strategy's stop, not a fallback
        assert algos[0]["clientAlgoId"] == f"bsm-{trade.id}-stop-0"
        assert sim_state(sim)["orders"] == sent_before  # the entry was not sent again
        assert engine.broker.getposition(engine.feeds[BTC]).size == 0.01
        with transaction(sessions) as s:
            purposes = [o.purpose for o in s.scalars(select(Order).where(Order.trade_id == trade.id))]
            assert purposes == ["entry", "stop"]
    finally:
        engine.stop()
    db.dispose()
