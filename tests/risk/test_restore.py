"""A live restart keeps what the risk rules remember: the loss streak, the wallet's peak and the trade rate come back
from the ledger's recent trades (a user restarting after three losses must not get full size back)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.orm import Session

from tests.live.conftest import BTC, client_factory
from trader.live.engine import EngineConfig, LiveEngine
from trader.live.ledger import Ledger
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Trade
from trader.risk.book import RiskBook, RiskHistory
from trader.risk.limits import limits_from_params
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.reference import RsiBollingerStrategy

START = 1746662400000  # 2025-05-08 00:00 UTC
HOUR = 3_600_000


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def _trade(s: Session, close_ms: int, pnl: str, fees: str = "1", status: str = "closed") -> None:
    s.add(Trade(pair=BTC, side="long", leverage=25, amount=Decimal("0.01"), amount_open=Decimal(0),
                stake=Decimal("40"), open_rate=Decimal("100000"), close_rate=Decimal("100000"), fees=Decimal(fees),
                funding=Decimal(0), realized_pnl=Decimal(pnl), status=status, open_date=_at(close_ms - HOUR),
                close_date=_at(close_ms)))


def _sessions(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(db)
    return db, make_session_factory(db)


def _limits():
    return limits_from_params(RsiBollingerStrategy.param_values())


def test_restore_rebuilds_streak_peak_and_rate() -> None:
    book = RiskBook(_limits())
    history = RiskHistory(closed=((1, 50.0, 49.0), (2, -30.0, -31.0), (3, -20.0, -21.0), (4, -10.0, -11.0)),
                          entries_ms=(0, 1, 2, 3))
    book.restore(history, wallet=1000.0)
    assert book.losses_in_a_row == 3
    assert book.peak_wallet == 1000.0 + 11 + 21 + 31  # the wallet before the three losses
    assert len(book.entries_ms) == 4 and book.first_ms == 0
    fresh = RiskBook(_limits())
    fresh.restore(RiskHistory(closed=((1, -5.0, -6.0), (2, 8.0, 7.0))), wallet=500.0)
    assert fresh.losses_in_a_row == 0 and fresh.peak_wallet == 500.0  # a win ended it; the peak is today's


def test_ledger_history_keeps_live_closed_trades_in_closing_order(tmp_path) -> None:
    db, sessions = _sessions(tmp_path)
    try:
        with transaction(sessions) as s:
            _trade(s, START - 40 * 24 * HOUR, "-9")  # beyond the lookback
            _trade(s, START - 5 * HOUR, "12")
            _trade(s, START - 3 * HOUR, "-4")
            _trade(s, START - 1 * HOUR, "0", status="exit_unknown")  # no P&L known: left out
            _trade(s, START - 1 * HOUR, "-7")
        history = Ledger(sessions).risk_history(START)
    finally:
        db.dispose()
    assert [(c, p) for c, p, _ in history.closed] == [(START - 5 * HOUR, 12.0), (START - 3 * HOUR, -4.0),
                                                      (START - HOUR, -7.0)]
    assert history.closed[-1][2] == -8.0  # net of the fee
    assert len(history.entries_ms) == 4  # opens of the last 7 days (the unknown exit's too: it was an entry)


def test_engine_restart_keeps_the_loss_streak(tmp_path) -> None:
    db, sessions = _sessions(tmp_path)
    limits = _limits()
    with transaction(sessions) as s:
        for k in range(limits.loss_streak):
            _trade(s, START - (k + 1) * HOUR, "-5")
    try:
        with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=[BTC], start_ms=START)) as sim:
            engine = LiveEngine(EngineConfig(pairs=[BTC], strategy=RsiBollingerStrategy, history_bars=40),
                                client_factory(sim), sessions=sessions)
            engine.start()
            try:
                strategy = engine.strategy
                assert strategy is not None
                status = strategy.risk.status()
            finally:
                engine.stop()
    finally:
        db.dispose()
    assert status["losses_in_a_row"] == limits.loss_streak
    assert status["streak_factor"] < 1.0  # the next entry is halved, as before the restart
