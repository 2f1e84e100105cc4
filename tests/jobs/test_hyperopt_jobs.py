"""A bounded hyperopt as a heavy job: run in a spawned worker with progress in trials, its summary back in the
final progress, cancel kills the worker, the one-heavy-job-per-owner rule covers backtests and hyperopts together;
and the check applied parameters must pass."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.jobs.test_runner import BTC, ETH, Recorder, spec
from trader.backtest.runner import new_run_id
from trader.data.store import bundled_data_dir
from trader.jobs import data
from trader.jobs.hyperopt import HyperoptJobSpec, HyperoptSummary, checked_params
from trader.jobs.runner import BacktestJobs, JobRefused
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.persistence.models import BacktestRun
from trader.strategy.reference import RsiBollingerStrategy


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def hspec(tmp_path: Path, epochs: int = 4, folds: int = 1, pairs: tuple[str, ...] = (BTC,),
          timeframe: str = "15m", timerange: str = "20250520-20250603") -> HyperoptJobSpec:
    rng = data.resolve_range(timerange)
    assert rng.start_ms is not None and rng.end_ms is not None
    return HyperoptJobSpec(new_run_id(), "rsi_bollinger", pairs, timeframe, rng.start_ms, rng.end_ms, str(rng), 10,
                           10_000.0, str(bundled_data_dir()), str(tmp_path / "hyperopt"), ("buy", "sell"), epochs,
                           folds)


def test_a_hyperopt_job_reports_trials_and_returns_its_best_parameters(sessions: sessionmaker[Session],
                                                                         tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    job_id = jobs.start_hyperopt("test:1", hspec(tmp_path, epochs=4, folds=2), seen)
    assert jobs.get(job_id) is not None and jobs.get(job_id).kind == "hyperopt"  # type: ignore[union-attr]
    assert jobs.wait(job_id, 90)
    final = seen.seen[-1]
    assert final.state == "done" and final.kind == "hyperopt" and final.fraction == 1.0
    assert final.bars_total == 8 == final.bars_done  # 2 folds × 4 trials
    running = [p for p in seen.seen if p.state == "running" and p.bars_total]
    assert running and all(p.kind == "hyperopt" and p.folds == 2 for p in running)
    assert [p.bars_done for p in running] == sorted(p.bars_done for p in running)
    summary = final.result
    assert isinstance(summary, HyperoptSummary) and summary.run_id == job_id and summary.folds == 2
    assert summary.trials == 8 and summary.timerange == "20250520-20250603"
    assert set(summary.best_params) == {"rsi_period", "rsi_low", "rsi_high", "bb_period", "bb_dev",
                                        "time_stop_bars", "breakeven"}
    assert checked_params(RsiBollingerStrategy, summary.best_params) == summary.best_params
    exported = json.loads(Path(summary.export).read_text())
    assert exported["best_params"] == summary.best_params and len(exported["folds"]) == 2
    assert "aggregate out of sample" in summary.table
    with sessions() as s:  # a hyperopt is not a backtest run
        assert s.scalar(select(func.count()).select_from(BacktestRun)) == 0
    assert jobs.running() == []


def test_cancel_kills_a_hyperopt_worker_and_one_heavy_job_covers_both_kinds(sessions: sessionmaker[Session],
                                                                             tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    # 1m bars over three weeks, 100 trials: far longer than the test waits.
    job_id = jobs.start_hyperopt("test:1", hspec(tmp_path, epochs=100, folds=3, pairs=(BTC, ETH), timeframe="1m",
                                                 timerange="20250510-20250603"), seen)
    pid = jobs.pid(job_id)
    assert pid is not None
    with pytest.raises(JobRefused) as refused:
        jobs.start("test:1", spec(tmp_path), Recorder())
    assert refused.value.reason == "owner_busy" and refused.value.running == job_id
    assert refused.value.kind == "hyperopt"
    seen.wait_for(lambda p: p.state == "running" and p.bars_done > 0, timeout=60)
    assert jobs.cancel(job_id)
    final = seen.seen[-1]
    assert final.state == "cancelled" and final.result is None and 0 < final.bars_done < final.bars_total
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "hyperopt").exists()  # nothing exported for a stopped run
    assert not jobs.cancel(job_id)
    # A backtest running blocks a hyperopt of the same owner too.
    first = jobs.start("test:1", spec(tmp_path, pairs=(BTC, ETH), timeframe="1m", timerange="20250504-20250603"),
                       Recorder())
    try:
        with pytest.raises(JobRefused) as again:
            jobs.start_hyperopt("test:1", hspec(tmp_path), Recorder())
        assert again.value.running == first and again.value.kind == "backtest"
    finally:
        jobs.cancel(first)


def test_a_failing_hyperopt_reports_the_error(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    bad = HyperoptJobSpec(**{**hspec(tmp_path).__dict__, "spaces": ("nosuchspace",)})
    assert jobs.wait(jobs.start_hyperopt("test:1", bad, seen), 60)
    final = seen.seen[-1]
    assert final.state == "failed" and "nosuchspace" in final.error and final.result is None


def test_checked_params_keeps_the_strategy_types() -> None:
    assert checked_params(RsiBollingerStrategy, {"rsi_period": 21.0, "rsi_low": 25, "breakeven": False,
                                                 "tp_moves": [0.01, 0.02, 0.06]}) == \
        {"rsi_period": 21, "rsi_low": 25.0, "breakeven": False, "tp_moves": (0.01, 0.02, 0.06)}
    assert isinstance(checked_params(RsiBollingerStrategy, {"rsi_period": 21.0})["rsi_period"], int)
    for bad, words in (({"nope": 1}, "no parameters nope"), ({"rsi_period": 14.5}, "whole number"),
                       ({"rsi_low": "30"}, "number"), ({"rsi_low": True}, "number"),
                       ({"breakeven": 1}, "true or false"), ({"tp_moves": [0.01, 0.02]}, "3 values"),
                       ({"rsi_low": float("nan")}, "number")):
        with pytest.raises(ValueError, match=words):
            checked_params(RsiBollingerStrategy, bad)
