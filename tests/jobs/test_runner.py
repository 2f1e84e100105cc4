"""Backtests in spawned worker processes: progress, outcome stored, cancel kills the worker, one job per owner,
and the store check that answers "no data" with the download command before anything is spawned."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from trader.backtest.runner import new_run_id
from trader.data.store import bundled_data_dir
from trader.jobs import data, store
from trader.jobs.runner import BacktestJobs, JobProgress, JobRefused
from trader.jobs.worker import BacktestJobSpec
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.persistence.models import BacktestRun, Trade

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[JobProgress] = []
        self.lock = threading.Lock()
        self.threads: set[str] = set()

    def __call__(self, progress: JobProgress) -> None:
        with self.lock:
            self.seen.append(progress)
            self.threads.add(threading.current_thread().name)

    def wait_for(self, predicate: object, timeout: float = 20.0) -> JobProgress:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for p in self.seen:
                    if predicate(p):  # type: ignore[operator]
                        return p
            time.sleep(0.02)
        raise AssertionError(f"no such progress in {[(p.state, p.bars_done) for p in self.seen]}")


def spec(tmp_path: Path, pairs: tuple[str, ...] = (BTC,), timeframe: str = "15m",
         timerange: str = "20250510-20250513", data_dir: Path | None = None) -> BacktestJobSpec:
    rng = data.resolve_range(timerange)
    return BacktestJobSpec(new_run_id(), "rsi_bollinger", pairs, timeframe, rng.start_ms, rng.end_ms, str(rng), 10,
                           10_000.0, str(data_dir or bundled_data_dir()), str(tmp_path / "results"))


def row(sessions: sessionmaker[Session], run_id: str) -> BacktestRun:
    with sessions() as s:
        found = s.get(BacktestRun, run_id)
        assert found is not None
        return found


def test_a_run_reports_progress_and_is_stored(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    job = spec(tmp_path, pairs=(BTC, ETH))
    job_id = jobs.start("test:1", job, seen, requested_by=1)
    assert row(sessions, job_id).status == "running"
    assert jobs.wait(job_id, 60)
    final = seen.seen[-1]
    assert final.state == "done" and final.final and final.fraction == 1.0
    # 3 days of 15m bars for two pairs aligned: 288 bars.
    assert final.bars_total == final.bars_done == 288
    running = [p.bars_done for p in seen.seen if p.state == "running"]
    assert running == sorted(running) and running
    assert seen.threads and "MainThread" not in seen.threads
    stored = row(sessions, job_id)
    assert stored.status == "done" and stored.requested_by == 1 and stored.finished_at is not None
    assert stored.strategy == "RsiBollingerStrategy" and stored.timerange == "20250510-20250513"
    with sessions() as s:
        trades = s.scalar(select(func.count()).select_from(Trade).where(Trade.backtest_run_id == job_id))
    assert trades == stored.metrics["metrics"]["trades"]
    exported = json.loads((Path(stored.result_dir) / "result.json").read_text())
    assert exported["run_id"] == job_id and exported["bars"] == 288
    result = store.load_result(stored.result_dir)
    assert result is not None and result.bars == 288 and len(result.trades) == trades
    assert result.metrics.total_return == pytest.approx(exported["metrics"]["total_return"])
    assert result.equity[-1] == pytest.approx(result.final_wallet, abs=1e-6)
    assert store.find_run(sessions, job_id[-12:]) is not None and store.find_run(sessions, "zzzzzzzz") is None
    assert [v.id for v in store.recent_runs(sessions)] == [job_id]
    assert jobs.running() == []


def test_cancel_terminates_the_worker_and_marks_the_run(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    job_id = jobs.start("test:1", spec(tmp_path, pairs=(BTC, ETH, SOL), timeframe="1m",
                                       timerange="20250504-20250603"), seen)
    pid = jobs.pid(job_id)
    assert pid is not None
    seen.wait_for(lambda p: p.state == "running" and p.bars_done > 0)
    assert jobs.cancel(job_id)
    final = seen.seen[-1]
    assert final.state == "cancelled" and 0 < final.bars_done < final.bars_total
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie
    stored = row(sessions, job_id)
    assert stored.status == "cancelled" and stored.result_dir == "" and stored.finished_at is not None
    assert not (tmp_path / "results" / job_id).exists()
    assert not jobs.cancel(job_id)  # nothing left to cancel


def test_one_heavy_job_per_owner(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions, max_jobs=2)
    first = jobs.start("test:1", spec(tmp_path, timeframe="1m", timerange="20250504-20250603",
                                      pairs=(BTC, ETH, SOL)), Recorder())
    try:
        with pytest.raises(JobRefused) as refused:
            jobs.start("test:1", spec(tmp_path), Recorder())
        assert refused.value.reason == "owner_busy" and refused.value.running == first
        other = jobs.start("test:2", spec(tmp_path), Recorder())  # someone else may
        with pytest.raises(JobRefused) as busy:
            jobs.start("test:3", spec(tmp_path), Recorder())
        assert busy.value.reason == "machine_busy"
        assert jobs.wait(other, 60)
    finally:
        jobs.cancel(first)
    again = jobs.start("test:1", spec(tmp_path), Recorder())
    assert jobs.wait(again, 60)
    with sessions() as s:
        statuses = dict(s.execute(select(BacktestRun.id, BacktestRun.status)).all())
    assert statuses == {first: "cancelled", other: "done", again: "done"}


def test_a_worker_failure_is_stored(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    jobs = BacktestJobs(sessions)
    seen = Recorder()
    empty = tmp_path / "empty"
    empty.mkdir()
    job_id = jobs.start("test:1", spec(tmp_path, data_dir=empty), seen)
    assert jobs.wait(job_id, 60)
    final = seen.seen[-1]
    assert final.state == "failed" and final.missing_data and "FileNotFoundError" in final.error
    stored = row(sessions, job_id)
    assert stored.status == "failed" and "FileNotFoundError" in stored.error


def test_runs_left_running_by_a_dead_process_are_closed(sessions: sessionmaker[Session]) -> None:
    store.create_running(sessions, "dead-run", strategy="X", pairs=[BTC], timeframe="5m", timerange="-",
                         leverage=1, params={}, requested_by=None)
    BacktestJobs(sessions)
    with sessions() as s:
        dead = s.get(BacktestRun, "dead-run")
        assert dead is not None and dead.status == "failed" and dead.error == store.INTERRUPTED


def test_store_check_and_download_command() -> None:
    bundled = bundled_data_dir()
    whole = data.resolve_range("20250504-20250603")
    assert data.missing(bundled, [BTC, ETH], "15m", whole) is None
    assert data.missing(bundled, [BTC], "1m", data.resolve_range("20250504-")) is None
    # The sample starts 2025-05-04 15:33 and ends 2025-06-03 15:33: within a day of the range's edges.
    assert data.missing(bundled, [SOL], "5m", data.resolve_range("20250504-20250604")) is None
    assert data.missing(bundled, [SOL], "5m", data.resolve_range("20250503-20250604")) is not None
    assert data.missing(bundled, [SOL], "5m", data.resolve_range("20250504-20250605")) is not None
    assert data.missing(bundled, [SOL], "5m", data.resolve_range("20240101-20240105")) is not None
    lacking = data.missing(bundled, [BTC, "DOGE/USDT:USDT"], "15m", data.resolve_range("20250601-20250610"))
    assert lacking is not None and lacking.pairs == (BTC, "DOGE/USDT:USDT")
    assert lacking.command == "bsmart download --pairs BTC,DOGE --timeframes 15m --timerange 20250601-20250610"
    span = data.common_span(bundled, [BTC, SOL], "1h")
    assert span is not None and span.first_ms < span.end_ms
    assert dt.datetime.fromtimestamp(span.first_ms / 1000, dt.UTC).date() == dt.date(2025, 5, 4)
    week = data.resolve_range("7d", today=dt.date(2026, 11, 26))
    assert str(week) == "20261119-20261126"
    for bad in ("0d", "99999d", "2025-05-04", "20250603-20250504"):
        with pytest.raises(ValueError):
            data.resolve_range(bad)
