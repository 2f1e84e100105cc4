"""ML in the running engine, against the simulator (stepped clock, real sockets): the master strategy on BTC's 5m
feed with a tiny XGBoost model. The model's features are built from the engine's own closed bars
(``LivePredictions`` on ``LiveEngine.bar_observers``), a fresh prediction exists for every closed 5m bar and
/signals shows it, and the candidate signals of 2025-05-18 14:00–14:50 UTC (oscillation shorts, four of them with three
agreeing timeframes) are graded 3 once the model answers; the same replay without a model never grades 3."""

from __future__ import annotations

import pytest

from tests.live.conftest import BTC, MINUTE, client_factory, step_minutes, wait_until
from trader.events import EventBus
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.ml.live import GRID_MS, LivePredictions
from trader.ml.predictor import Predictor
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy import fusion
from trader.strategy.preflight import live_requirements

START = 1747575000000  # 2025-05-18 13:30 UTC
MINUTES = 85  # to 14:55: the agreeing-timeframes candidates close at 14:00, 14:05, 14:10, 14:40, 14:50
# ml_confirm 0: any answer of the model confirms, so the grade shows whether a prediction reached the decision
# (the model's own skill is what bench/ml_eval.py reports, not this test).
PARAMS = {"ml_confirm": 0.0}


@pytest.fixture
def sessions(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    upgrade(db)
    yield make_session_factory(db)
    db.dispose()


@pytest.fixture(autouse=True)
def no_provider_left():
    yield
    fusion.set_ml_provider(None)


def _run(sim: SimulatorThread, sessions, live: LivePredictions | None) -> tuple[LiveEngine, list[dict], dict]:
    need = live_requirements("master", PARAMS, "5m")
    engine = LiveEngine(EngineConfig(pairs=[BTC], strategy="master", timeframe="5m", strategy_params=PARAMS,
                                     history_bars=need["history_bars"], window=need["window"],
                                     stream=StreamOptions(heartbeat_s=5.0)),
                        client_factory(sim), bus=EventBus(), sessions=sessions)
    if live is not None:
        live.attach(engine)
    seen: list[dict] = []
    engine.start()
    try:
        for _ in range(MINUTES):
            step_minutes(sim, engine, 1, timeout=20.0)
            sig = engine.strategy.last_signal.get(BTC)
            if sig and (not seen or seen[-1]["at_ms"] != sig["at_ms"]):
                seen.append(dict(sig))
        if live is not None:  # the newest bar's prediction is made in the background, ≈ 0.1 s after its close
            newest = engine.feeds[BTC].last_bar_ms + GRID_MS
            wait_until(lambda: (r := live.latest(BTC)) is not None and r.close_ms == newest, 10.0)
        view = engine.strategy_view().result(10)
    finally:
        engine.stop()
    return engine, seen, view


@pytest.mark.slow
def test_a_live_model_grades_three_and_none_never_does(sessions, xgb_models) -> None:
    predictor = Predictor.load_active(xgb_models)
    assert predictor is not None
    live = LivePredictions(predictor, None, wait_s=10.0).start()
    fusion.set_ml_provider(live)
    try:
        with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC], start_ms=START)) as sim:
            engine, seen, view = _run(sim, sessions, live)
    finally:
        live.stop()
        fusion.set_ml_provider(None)
    last_grid = engine.feeds[BTC].last_bar_ms + GRID_MS  # the close of the newest 5m bar the engine decided on
    assert last_grid >= START + (MINUTES - 10) * MINUTE
    print(f"\nsignals with a model: {[(s['at_ms'], s['grade'], s['votes'].get('ml')) for s in seen]}")
    print(f"ML compute per 5m bar: {sorted(live.compute_ms)[len(live.compute_ms) // 2]:.0f} ms median, "
          f"{max(live.compute_ms):.0f} ms max over {len(live.compute_ms)}; strategy waits (ms): "
          f"{[round(w, 1) for w in live.wait_ms]}")
    assert not engine.errors
    assert len(seen) >= 3
    assert all("ml" in s["votes"] for s in seen), seen  # the model voted in the fusion at every candidate
    assert 3 in {s["grade"] for s in seen}
    ml = view["pairs"][BTC]["ml"]  # what /signals shows: the newest 5m bar's prediction
    assert ml is not None and ml["at_ms"] == last_grid and ml["score"] is not None and ml["models"]
    assert live.latest(BTC).close_ms == last_grid

    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC], start_ms=START)) as sim:
        engine, seen_without, view = _run(sim, sessions, None)
    print(f"signals without: {[(s['at_ms'], s['grade']) for s in seen_without]}")
    assert [s["at_ms"] for s in seen_without] == [s["at_ms"] for s in seen]
    assert 3 not in {s["grade"] for s in seen_without} and all("ml" not in s["votes"] for s in seen_without)
    # the same candidates: those the model confirmed at grade 3 are grade 2 without it, the others unchanged
    assert [s["grade"] for s in seen_without] == [2 if s["grade"] == 3 else s["grade"] for s in seen]
    assert view["pairs"][BTC]["ml"] is None
