from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from trader.persistence.audit import Actor, AuditLog
from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import current_revision, head_revision, upgrade
from trader.persistence.models import BacktestRun, Base, Fill, FundingPayment, Order, Trade
from trader.persistence.runtime_state import RuntimeStateStore

NOW = dt.datetime(2025, 5, 4, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def db(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'trades.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _trade(**kw) -> Trade:
    base = dict(
        pair="BTC/USDT:USDT", side="long", leverage=25, amount=Decimal("0.012"), amount_open=Decimal("0.012"),
        stake=Decimal("45.6"), open_rate=Decimal("95000.1"), open_date=NOW,
    )
    return Trade(**{**base, **kw})


def test_migrations_build_exactly_the_models(db) -> None:
    assert current_revision(db) == head_revision()
    with db.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert set(inspect(db).get_table_names()) >= {
        "trades", "orders", "fills", "funding_payments", "audit_events", "runtime_state", "backtest_runs",
        "bot_user_settings", "bot_role_grants",
    }


def test_sqlite_runs_in_wal_with_foreign_keys(db) -> None:
    with db.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_upgrade_twice_keeps_the_data(db) -> None:
    sessions = make_session_factory(db)
    with transaction(sessions) as session:
        session.add(_trade())
    upgrade(db)
    with sessions() as session:
        assert session.scalar(select(Trade.pair)) == "BTC/USDT:USDT"


def test_money_is_exact_and_floats_are_refused(db) -> None:
    sessions = make_session_factory(db)
    tiny = Decimal("0.000000012345678901234567")
    with transaction(sessions) as session:
        session.add(_trade(realized_pnl=tiny, funding=Decimal("-1.0000000001")))
    with sessions() as session:
        trade = session.scalar(select(Trade))
        assert trade.realized_pnl == tiny and isinstance(trade.realized_pnl, Decimal)
        assert trade.funding == Decimal("-1.0000000001")
        assert trade.open_date == NOW and trade.open_date.tzinfo is not None
    with pytest.raises(StatementError, match="Decimal, not float"), transaction(sessions) as session:
        session.add(_trade(fees=0.1))


def test_naive_datetimes_are_refused(db) -> None:
    sessions = make_session_factory(db)
    with pytest.raises(StatementError, match="naive datetime"), transaction(sessions) as session:
        session.add(_trade(open_date=dt.datetime(2025, 5, 4)))


def test_orders_fills_and_funding_hang_off_a_trade(db) -> None:
    sessions = make_session_factory(db)
    with transaction(sessions) as session:
        trade = _trade()
        order = Order(
            trade=trade, client_order_id="bsm-1-entry", pair=trade.pair, type="MARKET", side="buy",
            amount=Decimal("0.012"), status="filled", filled=Decimal("0.012"),
        )
        stop = Order(
            trade=trade, client_order_id="bsm-1-stop", pair=trade.pair, type="STOP_MARKET", side="sell",
            reduce_only=True, stop_price=Decimal("92000"), status="new", purpose="stop",
        )
        session.add_all([trade, order, stop])
        session.add(Fill(order=order, trade=trade, pair=trade.pair, exchange_trade_id="991", side="buy",
                         price=Decimal("95000.1"), amount=Decimal("0.012"), fee=Decimal("0.570000600"), time=NOW))
        session.add(FundingPayment(trade=trade, pair=trade.pair, rate=Decimal("0.0001"), amount=Decimal("-0.114"),
                                   time=NOW))
    with sessions() as session:
        trade = session.scalar(select(Trade))
        assert [o.purpose for o in trade.orders] == ["entry", "stop"]
        assert trade.fills[0].fee == Decimal("0.570000600")
        assert trade.funding_payments[0].amount == Decimal("-0.114")


def test_duplicate_client_order_id_is_rejected(db) -> None:
    sessions = make_session_factory(db)
    order = dict(client_order_id="bsm-dup", pair="BTC/USDT:USDT", type="MARKET", side="buy")
    with transaction(sessions) as session:
        session.add(Order(**order))
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(Order(**order))


def test_backtest_run_owns_its_trades(db) -> None:
    sessions = make_session_factory(db)
    with transaction(sessions) as session:
        run = BacktestRun(id="run-1", strategy="ref", pairs=["BTC/USDT:USDT"], timeframe="1m",
                          timerange="20250504-20250603", leverage=25, metrics={"sharpe": 1.2})
        run.trades.append(_trade(status="closed", backtest_run_id="run-1"))
        session.add(run)
    with transaction(sessions) as session:
        session.delete(session.get(BacktestRun, "run-1"))
    with sessions() as session:
        assert session.scalar(select(Trade)) is None


def test_runtime_state_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    store = RuntimeStateStore(make_session_factory(engine))
    store.set("leverage", 20, updated_by="telegram:42")
    store.set("pair_whitelist", ["BTC/USDT:USDT"])
    store.set("leverage", 15, updated_by="telegram:42")
    engine.dispose()

    engine = make_engine(url)
    upgrade(engine)
    store = RuntimeStateStore(make_session_factory(engine))
    assert store.get("leverage") == 15
    assert store.all() == {"leverage": 15, "pair_whitelist": ["BTC/USDT:USDT"]}
    assert store.get("paused", False) is False
    with pytest.raises(KeyError):
        store.set("levrage", 3)
    engine.dispose()


def test_audit_log_keeps_who_what_and_outcome(db) -> None:
    audit = AuditLog(make_session_factory(db))
    audit.record(Actor("telegram", 42, "admin"), "set_leverage", {"leverage": 20}, "ok")
    audit.record(Actor("telegram", 99), "flatten", {}, "denied", "unknown user")
    recent = audit.recent(10)
    assert [(r.action, r.outcome, r.actor.user_id) for r in recent] == [("flatten", "denied", 99), ("set_leverage", "ok", 42)]
    assert recent[1].arguments == {"leverage": 20}
    with pytest.raises(ValueError):
        audit.record(Actor("cli"), "x", outcome="maybe")


def test_in_memory_database_is_shared_across_sessions() -> None:
    engine = make_engine("sqlite://")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        session.add(_trade())
    with sessions() as session:
        assert session.scalar(select(Trade.leverage)) == 25
