from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import BacktestRun, Trade
from trader.service.leverage import OpenPosition, leverage_refusals, max_leverage_for
from trader.service.pnl import performance_by_pair, pnl_by_period, recent_trades

# Binance's BTCUSDT tiers in ccxt's shape (first four).
TIERS = [
    {"minNotional": 0, "maxNotional": 50_000, "maxLeverage": 125},
    {"minNotional": 50_000, "maxNotional": 600_000, "maxLeverage": 100},
    {"minNotional": 600_000, "maxNotional": 3_000_000, "maxLeverage": 75},
    {"minNotional": 3_000_000, "maxNotional": 12_000_000, "maxLeverage": 50},
]


def test_bracket_lookup() -> None:
    assert max_leverage_for(TIERS, Decimal(0)) == 125
    assert max_leverage_for(TIERS, Decimal(700_000)) == 75
    assert max_leverage_for(TIERS, Decimal(10**9)) is None


def leverage_problems(new: int, **kwargs) -> tuple[list[str], list[str]]:
    """(invalid, refused) as English texts."""
    invalid, refused = leverage_refusals(new, **kwargs)
    return [p.text for p in invalid], [p.text for p in refused]


def test_bounds_come_from_config_and_brackets() -> None:
    invalid, _ = leverage_problems(60, max_leverage=50, stop_leverage_factor=0.8, positions=[], tiers={})
    assert invalid == ["leverage must be between 1 and 50 (max_leverage in the config)"]
    small = [{"minNotional": 0, "maxNotional": 5_000, "maxLeverage": 20}]
    invalid, _ = leverage_problems(25, max_leverage=50, stop_leverage_factor=0.8, positions=[],
                                   tiers={"DOGE/USDT:USDT": small})
    assert invalid == ["DOGE/USDT:USDT allows at most 20x"]


def test_a_stop_beyond_the_new_buffer_is_refused() -> None:
    # 10x with a stop 5 % below entry (inside 8 %); at 25x the cap is 3.2 %: liquidation would come first.
    pos = OpenPosition("ETH/USDT:USDT", "long", Decimal("2500"), Decimal("5000"), Decimal("2375"))
    invalid, refused = leverage_problems(25, max_leverage=50, stop_leverage_factor=0.8, positions=[pos], tiers={})
    assert invalid == [] and len(refused) == 1
    assert "5.00% from entry" in refused[0] and "3.20%" in refused[0]
    assert leverage_problems(15, max_leverage=50, stop_leverage_factor=0.8, positions=[pos], tiers={}) == ([], [])


def test_a_big_position_limits_leverage_by_its_bracket() -> None:
    pos = OpenPosition("BTC/USDT:USDT", "short", Decimal("95000"), Decimal("700000"), None)
    _, refused = leverage_problems(100, max_leverage=125, stop_leverage_factor=0.8, positions=[pos],
                                   tiers={"BTC/USDT:USDT": TIERS})
    assert refused == ["BTC/USDT:USDT: a 700000 USDT position allows at most 75x"]
    _, (problem,) = leverage_refusals(100, max_leverage=125, stop_leverage_factor=0.8, positions=[pos],
                                      tiers={"BTC/USDT:USDT": TIERS})
    assert (problem.reason, problem.params) == ("leverage_position_cap",
                                                {"pair": "BTC/USDT:USDT", "notional": "700000", "maximum": 75})


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _trade(pair: str, closed: dt.datetime, pnl: str, fees: str = "1", funding: str = "0", **kw) -> Trade:
    return Trade(pair=pair, side="long", leverage=25, amount=Decimal("1"), stake=Decimal("10"),
                 open_rate=Decimal("100"), close_rate=Decimal("101"), open_date=closed - dt.timedelta(hours=1),
                 close_date=closed, status="closed", realized_pnl=Decimal(pnl), fees=Decimal(fees),
                 funding=Decimal(funding), **kw)


def test_pnl_by_day_week_month_in_the_users_zone(sessions) -> None:
    utc = dt.timezone.utc
    now = dt.datetime(2025, 5, 21, 12, 0, tzinfo=utc)  # a Wednesday
    with transaction(sessions) as s:
        s.add(_trade("BTC/USDT:USDT", dt.datetime(2025, 5, 21, 10, tzinfo=utc), "10"))  # net 9
        s.add(_trade("ETH/USDT:USDT", dt.datetime(2025, 5, 20, 17, tzinfo=utc), "-4", funding="-0.5"))  # net -5.5
        s.add(_trade("BTC/USDT:USDT", dt.datetime(2025, 5, 12, 9, tzinfo=utc), "3"))  # net 2, last week
        s.add(_trade("BTC/USDT:USDT", dt.datetime(2025, 4, 30, 9, tzinfo=utc), "100"))  # net 99, April
    days = pnl_by_period(sessions, "day", 3, now=now)
    assert [(d.start.isoformat(), d.net_pnl, d.trades, d.wins) for d in days] == [
        ("2025-05-21", Decimal("9"), 1, 1), ("2025-05-20", Decimal("-5.5"), 1, 0), ("2025-05-19", Decimal(0), 0, 0)]
    # In Shanghai (UTC+8) the ETH trade closed at 01:00 on the 21st.
    shanghai = pnl_by_period(sessions, "day", 2, tz="Asia/Shanghai", now=now)
    assert [d.net_pnl for d in shanghai] == [Decimal("3.5"), Decimal(0)]
    weeks = pnl_by_period(sessions, "week", 2, now=now)
    assert [(w.start.isoformat(), w.net_pnl) for w in weeks] == [("2025-05-19", Decimal("3.5")), ("2025-05-12", Decimal("2"))]
    months = pnl_by_period(sessions, "month", 2, now=now)
    assert [(m.start.isoformat(), m.net_pnl) for m in months] == [("2025-05-01", Decimal("5.5")), ("2025-04-01", Decimal("99"))]


def test_performance_and_recent_trades_ignore_backtests(sessions) -> None:
    t = dt.datetime(2025, 5, 21, 10, tzinfo=dt.timezone.utc)
    with transaction(sessions) as s:
        s.add(_trade("BTC/USDT:USDT", t, "10"))
        s.add(_trade("BTC/USDT:USDT", t, "-3"))
        s.add(_trade("ETH/USDT:USDT", t, "1", fees="2"))
        run = BacktestRun(id="bt1", strategy="x", pairs=[], timeframe="1m", timerange="-", leverage=25)
        run.trades.append(_trade("BTC/USDT:USDT", t, "1000"))
        s.add(run)
    perf = performance_by_pair(sessions)
    assert [(p.pair, p.trades, p.wins, p.net_pnl) for p in perf] == [
        ("BTC/USDT:USDT", 2, 1, Decimal("5")), ("ETH/USDT:USDT", 1, 0, Decimal("-1"))]
    assert len(recent_trades(sessions, 2)) == 2 and len(recent_trades(sessions, 10)) == 3
