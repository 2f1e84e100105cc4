"""The backtest and the live engine size the same entry identically from the same config: the reference strategy
with a risk section whose rules act (per-coin cap, volatility scaling) over the same 1m candles, once through
``run_backtest`` and once live against the simulator (stepped clock, real sockets); the first entry's side,
minute and quantity agree, and differ from what the default config would size."""

from __future__ import annotations

import threading

from sqlalchemy import select

from tests.live.conftest import BTC, MINUTE, client_factory, step_minutes
from trader.backtest.runner import BacktestRequest, run_backtest
from trader.config.schema import Settings
from trader.events import EventBus, RiskRuleHit
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Trade
from trader.risk.limits import declared_risk_params
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.reference import RsiBollingerStrategy

START = 1746662400000  # 2025-05-08 00:00 UTC: the first short at minute 57
WARM = 30
RISK = {"risk_per_trade": 0.005, "max_coin_risk": 0.004, "volatility_percentile": 0.5, "volatility_size": 0.3,
        "volatility_window": 20}


def _params(risk: dict) -> dict:
    return declared_risk_params(Settings(risk=risk), RsiBollingerStrategy.param_values())


def _backtest_first(risk: dict):
    r = run_backtest(BacktestRequest(strategy=RsiBollingerStrategy, pairs=(BTC,), start_ms=START,
                                     end_ms=START + 2 * 3_600_000, use_funding=False, strategy_params=_params(risk)))
    return r.trades[0], r.risk_counts


def test_backtest_and_live_size_the_first_entry_alike(tmp_path) -> None:
    expected, counts = _backtest_first(RISK)
    default, _ = _backtest_first({})
    assert counts.get("volatility", {}).get("shrunk") and expected.qty < 0.2 * default.qty  # the rules acted
    db = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    upgrade(db)
    sessions = make_session_factory(db)
    bus = EventBus()
    hits: list[RiskRuleHit] = []
    lock = threading.Lock()

    def keep(e) -> None:
        if isinstance(e, RiskRuleHit):
            with lock:
                hits.append(e)

    bus.subscribe(keep)
    minutes = (expected.open_ms - START) // MINUTE - WARM + 2
    try:
        with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC],
                                       start_ms=START + WARM * MINUTE)) as sim:
            engine = LiveEngine(EngineConfig(pairs=[BTC], strategy=RsiBollingerStrategy,
                                             strategy_params=_params(RISK), history_bars=WARM,
                                             stream=StreamOptions(heartbeat_s=5.0)),
                                client_factory(sim), bus=bus, sessions=sessions)
            engine.start()
            try:
                step_minutes(sim, engine, minutes)
            finally:
                engine.stop()
        with transaction(sessions) as s:
            first = s.scalars(select(Trade).order_by(Trade.id)).first()
            assert first is not None, "the live engine made no entry"
            got = (first.side, int(first.open_date.timestamp() * 1000) // MINUTE * MINUTE, float(first.amount))
    finally:
        db.dispose()
    assert got[:2] == (expected.side, expected.open_ms)
    assert abs(got[2] - expected.qty) <= 0.0011, (got, expected.qty)  # one lot step at most (fill rounding)
    # Live, the same rules told what they did.
    assert {(h.rule, h.effect) for h in hits} >= {("volatility", "shrunk")}
