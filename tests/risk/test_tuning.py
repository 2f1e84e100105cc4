"""Re-tuning the risk parameters over recent trades (trader/risk/tuning.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from trader.persistence.database import make_engine, make_session_factory, transaction
from trader.persistence.migrate import upgrade
from trader.persistence.models import Order, Trade
from trader.risk.limits import RiskLimits
from trader.risk.tuning import MIN_TRADES, TUNED, TradeOutcome, outcomes_from_ledger, replay, tune

H = 3_600_000


def _outcomes(n: int, seed: int = 1) -> list[TradeOutcome]:
    rng = np.random.default_rng(seed)
    t, out = 0, []
    for i in range(n):
        t += int(rng.integers(1, 6)) * H
        out.append(TradeOutcome(t, t + H * int(rng.integers(1, 4)), ("BTC/USDT:USDT", "ETH/USDT:USDT")[i % 2], 1,
                                float(rng.choice([-1.0, -1.0, 1.6, 2.5]))))
    return out


def test_replay_sizes_by_the_rules() -> None:
    losses = [TradeOutcome(i * 2 * H, i * 2 * H + H, "BTC/USDT:USDT", 1, -1.0) for i in range(5)]
    plain = replay(losses, RiskLimits(loss_streak=100))
    halved = replay(losses, RiskLimits(loss_streak=3, streak_size=0.5))
    assert plain.final == pytest.approx(0.98 ** 5)
    assert halved.final == pytest.approx(0.98 ** 3 * 0.99 ** 2)  # the 4th and 5th at half size
    assert plain.taken == halved.taken == 5 and halved.max_drawdown < plain.max_drawdown


def test_tuning_only_lowers_risk_and_proposes_only_what_holds_out_of_sample() -> None:
    current = RiskLimits()
    p = tune(_outcomes(120), current, trials=60)
    assert set(p.current) == set(TUNED)
    assert set(p.proposed) <= set(TUNED)
    assert p.proposed.get("risk_per_trade", 0) <= current.risk_per_trade
    assert p.proposed.get("max_total_risk", 0) <= current.max_total_risk
    if p.proposed:
        assert p.test_after > p.test_before
    assert p.train_after >= p.train_before  # the values in force were a candidate


def test_too_few_trades_are_refused() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_TRADES}"):
        tune(_outcomes(MIN_TRADES - 1), RiskLimits())


def test_outcomes_come_from_the_ledger_as_r_multiples(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    with transaction(sessions) as s:
        for i, (net, stop) in enumerate([(Decimal("-20"), Decimal("99")), (Decimal("30"), Decimal("99")),
                                         (Decimal("5"), None)]):
            t = Trade(pair="BTC/USDT:USDT", side="long", leverage=25, amount=Decimal("20"), stake=Decimal("80"),
                      open_rate=Decimal("100"), close_rate=Decimal("101"), realized_pnl=net, fees=Decimal("0"),
                      status="closed", dry_run=True, open_date=now - dt.timedelta(hours=5 - i),
                      close_date=now - dt.timedelta(hours=4 - i))
            s.add(t)
            s.flush()
            if stop is not None:
                s.add(Order(trade_id=t.id, client_order_id=f"bsm-{i}-stop", pair=t.pair, type="STOP_MARKET",
                            side="sell", purpose="stop", stop_price=stop))
    got = outcomes_from_ledger(sessions, now - dt.timedelta(days=1), dry_run=True)
    engine.dispose()
    assert [round(o.r, 6) for o in got] == [-1.0, 1.5]  # 20 units × 1 USDT to the stop = 20 USDT at risk
    assert outcomes_from_ledger(sessions, now, dry_run=True) == []
