"""``bsmart backtest`` end to end: summary, export, database rows."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from bot.cli import main
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.models import BacktestRun, Trade


def test_backtest_command_prints_stores_and_exports(isolated: Path, capsys) -> None:
    rc = main(["backtest", "--pairs", "BTC,SOL", "--timeframe", "1m", "--timerange", "20250520-20250522",
               "--leverage", "25", "--montecarlo", "500"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "max drawdown" in out and "liquidations" in out and "monte carlo: 500 shuffles" in out
    (run_dir,) = (isolated / "user_data" / "backtest_results").iterdir()
    doc = json.loads((run_dir / "result.json").read_text())
    assert doc["pairs"] == ["BTC/USDT:USDT", "SOL/USDT:USDT"] and doc["montecarlo"]["runs"] == 500
    engine = make_engine(f"sqlite:///{isolated / 'user_data' / 'tradesv3.sqlite'}")
    with make_session_factory(engine)() as s:
        run = s.get(BacktestRun, run_dir.name)
        assert run is not None and run.status == "done" and run.leverage == 25
        assert run.timerange == "20250520-20250522" and run.result_dir == str(run_dir)
        n = s.scalar(select(func.count()).select_from(Trade).where(Trade.backtest_run_id == run.id))
        assert n == doc["metrics"]["trades"] > 0
        rows = s.scalars(select(Trade).where(Trade.backtest_run_id == run.id)).all()
        total = sum(t.realized_pnl - t.fees + t.funding for t in rows)
        assert all(t.status == "closed" and t.close_date >= t.open_date for t in rows)
        assert abs(float(total) - (doc["final_wallet"] - doc["initial_wallet"])) < 1e-4
    engine.dispose()


def test_export_dir_and_no_db(isolated: Path, capsys) -> None:
    rc = main(["backtest", "--pairs", "ETH", "--timeframe", "15m", "--timerange", "20250510-20250520",
               "--export", "out", "--no-db", "--montecarlo", "0"])
    assert rc == 0
    assert len(list((isolated / "out").iterdir())) == 1
    assert not (isolated / "user_data" / "tradesv3.sqlite").exists()


def test_bad_arguments_exit_2(isolated: Path, capsys) -> None:
    assert main(["backtest", "--timerange", "20250520"]) == 2
    assert main(["backtest", "--strategy", "nope"]) == 2
    assert main(["backtest", "--leverage", "500"]) == 2
    assert "error:" in capsys.readouterr().err
