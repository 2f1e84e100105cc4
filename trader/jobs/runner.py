"""Heavy jobs in worker processes: a backtest or a hyperopt never runs on the engine's or the bot's event loop.

    jobs = BacktestJobs(core.sessions)
    job_id = jobs.start("telegram:1002", spec, on_progress)   # returns at once; the worker is spawned
    job_id = jobs.start_hyperopt("telegram:1001", hspec, on_progress)  # the same, for a bounded hyperopt
    jobs.cancel(job_id)                                        # terminates the worker, the run is "cancelled"

All kinds (backtest, hyperopt, model training) share the limits (one heavy job per owner, ``max_jobs`` in all)
and the follower. A backtest's run is a ``BacktestRun`` row; a hyperopt's outcome travels in its final
``JobProgress.result`` (a ``HyperoptSummary``) and its JSON export, a training's (``TrainSummary``) there and in
the model registry, nothing in the database: applying its parameters is the service's separate, audited action.

Each job is a "spawn" process (never fork: the parent holds sockets, threads and an event loop a fork would copy
in whatever state they were) and one follower thread in this process that reads the worker's pipe, calls
``on_progress`` (from that thread: callers hand it to their own loop) and writes the outcome to the database.
A pipe rather than a ``multiprocessing.Queue``: once the parent drops its write end, a worker that dies or is
terminated mid-message shows up as EOF instead of a reader blocked forever on half a message.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from trader.backtest.runner import resolve_strategy
from trader.jobs import store
from trader.jobs.hyperopt import HyperoptJobSpec
from trader.jobs.hyperopt import run as hyperopt_work
from trader.jobs.train import TrainJobSpec
from trader.jobs.train import run as train_work
from trader.jobs.worker import BacktestJobSpec
from trader.jobs.worker import run as work

log = logging.getLogger(__name__)

State = Literal["starting", "loading", "running", "done", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})
HEARTBEAT_S = 1.0  # a silent worker still gets its elapsed time refreshed this often
TERMINATE_WAIT_S = 5.0


@dataclass(frozen=True)
class JobProgress:
    job_id: str  # also the BacktestRun id
    owner: str
    state: State
    bars_done: int
    bars_total: int
    elapsed_s: float
    error: str = ""
    missing_data: bool = False  # failed because a candle file was absent
    kind: str = "backtest"  # "backtest" | "hyperopt" | "train"; for a hyperopt the "bars" are trials (folds ×
    # epochs), for a training thousandths of the work
    fold: int = 0  # hyperopt: 0-based fold being optimised, of ``folds``
    folds: int = 0
    best_score: float | None = None  # hyperopt: best in-sample score of the current fold so far
    result: Any = None  # hyperopt / train, final "done" only: the HyperoptSummary / TrainSummary

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return self.bars_done / self.bars_total if self.bars_total else 0.0

    @property
    def final(self) -> bool:
        return self.state in FINAL


Listener = Callable[[JobProgress], None]


class JobRefused(Exception):
    """Not started: the owner already has a heavy job, or the machine has its share of them."""

    def __init__(self, reason: Literal["owner_busy", "machine_busy"], running: str, kind: str = ""):
        super().__init__(f"{reason}: {running}")
        self.reason = reason
        self.running = running
        self.kind = kind  # owner_busy: what the owner is running ("backtest" | "hyperopt")


@dataclass
class _Job:
    spec: BacktestJobSpec | HyperoptJobSpec | TrainJobSpec
    owner: str
    listener: Listener
    process: Any
    conn: Any
    started: float
    state: State = "starting"
    bars_done: int = 0
    bars_total: int = 0
    cancel_requested: bool = False
    finishing: bool = False  # the result arrived: too late to cancel
    fold: int = 0
    folds: int = 0
    best_score: float | None = None
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)


class BacktestJobs:
    """At most one heavy job per owner and ``max_jobs`` in all; results and outcomes go to ``BacktestRun``."""

    def __init__(self, sessions: sessionmaker[Session], *, max_jobs: int = 2, heartbeat_s: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.sessions = sessions
        self.max_jobs = max_jobs
        self.heartbeat_s = heartbeat_s
        self._clock = clock
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        # Rows a previous process left "running" can never finish now.
        closed = store.mark_interrupted(sessions)
        if closed:
            log.warning("%d backtest runs were left running by a previous process; marked failed", closed)

    # -- queries ----------------------------------------------------------------------------------------------------
    def running(self, owner: str | None = None) -> list[JobProgress]:
        with self._lock:
            return [self._snapshot(j) for j in self._jobs.values() if owner is None or j.owner == owner]

    def get(self, job_id: str) -> JobProgress | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return self._snapshot(job) if job else None

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until the job has been followed to its end (outcome stored, last progress sent)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return True if job is None else job.done.wait(timeout)

    def pid(self, job_id: str) -> int | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.process.pid if job else None

    # -- start / cancel ---------------------------------------------------------------------------------------------
    def start(self, owner: str, spec: BacktestJobSpec, listener: Listener, *, requested_by: int | None = None,
              params: dict[str, Any] | None = None) -> str:
        def create_row() -> None:
            # Named like a finished run (and the CLI's rows): the class, not the registry key.
            store.create_running(self.sessions, spec.run_id, strategy=resolve_strategy(spec.strategy).__name__,
                                 pairs=list(spec.pairs), timeframe=spec.timeframe, timerange=spec.timerange,
                                 leverage=spec.leverage, params=params or {}, requested_by=requested_by)

        def fail_row(error: str) -> None:
            store.finish_other(self.sessions, spec.run_id, "failed", error)

        return self._launch(owner, spec, listener, work, create_row, fail_row)

    def start_hyperopt(self, owner: str, spec: HyperoptJobSpec, listener: Listener) -> str:
        """A bounded hyperopt (``spec.epochs`` × ``spec.folds`` trials, one process): the same limits as a
        backtest; its final progress carries the ``HyperoptSummary`` in ``result``."""
        return self._launch(owner, spec, listener, hyperopt_work, None, None)

    def start_train(self, owner: str, spec: TrainJobSpec, listener: Listener) -> str:
        """Model training (trader.jobs.train): the same limits as a backtest; its final progress carries the
        ``TrainSummary`` in ``result``."""
        return self._launch(owner, spec, listener, train_work, None, None)

    def _launch(self, owner: str, spec: BacktestJobSpec | HyperoptJobSpec | TrainJobSpec, listener: Listener,
                target: Callable[..., None], before: Callable[[], None] | None,
                on_fail: Callable[[str], None] | None) -> str:
        kind = _kind(spec)
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner]
            if mine:
                raise JobRefused("owner_busy", mine[0].spec.run_id, _kind(mine[0].spec))
            if len(self._jobs) >= self.max_jobs:
                raise JobRefused("machine_busy", ", ".join(self._jobs))
            if before is not None:
                before()
            receiver, sender = self._ctx.Pipe(duplex=False)
            process = self._ctx.Process(target=target, args=(spec, sender), name=f"{kind}-{spec.run_id}",
                                        daemon=True)
            job = _Job(spec, owner, listener, process, receiver, self._clock())
            self._jobs[spec.run_id] = job
            try:
                process.start()
            except Exception as exc:
                del self._jobs[spec.run_id]
                if on_fail is not None:
                    on_fail(f"could not start a worker: {exc}")
                raise
            finally:
                sender.close()  # the child holds its own copy; ours would hide the child's death (no EOF)
            job.thread = threading.Thread(target=self._follow, args=(job,), name=f"follow-{spec.run_id}",
                                          daemon=True)
            job.thread.start()
        return spec.run_id

    def cancel(self, job_id: str) -> bool:
        """Terminate the worker; False when there is no such job or its result has already arrived."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finishing or job.cancel_requested:
                return False
            job.cancel_requested = True
        _stop(job.process)
        job.done.wait(TERMINATE_WAIT_S * 2)
        return True

    def close(self) -> None:
        """Cancel everything (the host is stopping)."""
        for job_id in list(self._jobs):
            self.cancel(job_id)

    # -- following a worker -----------------------------------------------------------------------------------------
    def _snapshot(self, job: _Job) -> JobProgress:
        return JobProgress(job.spec.run_id, job.owner, job.state, job.bars_done, job.bars_total,
                           self._clock() - job.started, kind=_kind(job.spec), fold=job.fold, folds=job.folds,
                           best_score=job.best_score)

    def _notify(self, job: _Job, progress: JobProgress | None = None) -> None:
        try:
            job.listener(progress or self._snapshot(job))
        except Exception:  # a front end failing to show progress must not lose the run
            log.exception("%s %s: progress listener failed", _kind(job.spec), job.spec.run_id)

    def _follow(self, job: _Job) -> None:
        outcome: tuple[str, dict[str, Any]] | None = None
        try:
            while outcome is None:
                if not job.conn.poll(self.heartbeat_s):
                    self._notify(job)  # nothing new: the elapsed time still moves
                    continue
                kind, data = job.conn.recv()
                if kind == "progress":
                    job.state = data["state"]
                    job.bars_done, job.bars_total = data["bars_done"], data["bars_total"]
                    if "folds" in data:
                        job.fold, job.folds, job.best_score = data["fold"], data["folds"], data["best_score"]
                    self._notify(job)
                else:
                    with self._lock:
                        if not job.cancel_requested:
                            job.finishing = True
                    outcome = (kind, data)
        except (EOFError, OSError):
            pass  # the worker is gone: terminated by cancel() or crashed
        finally:
            job.conn.close()
        job.process.join(TERMINATE_WAIT_S)
        final = self._conclude(job, outcome)
        with self._lock:
            self._jobs.pop(job.spec.run_id, None)
        self._notify(job, final)
        job.done.set()

    def _conclude(self, job: _Job, outcome: tuple[str, dict[str, Any]] | None) -> JobProgress:
        if isinstance(job.spec, (HyperoptJobSpec, TrainJobSpec)):
            return self._conclude_hyperopt(job, outcome)
        spec = job.spec
        error, missing = "", False
        try:
            if job.cancel_requested:
                job.state = "cancelled"
                store.finish_other(self.sessions, spec.run_id, "cancelled", "cancelled by the user")
                # A worker stopped while exporting may leave half a directory; only this run's own is removed.
                partial = Path(spec.results_dir) / spec.run_id
                if partial.is_dir():
                    shutil.rmtree(partial, ignore_errors=True)
            elif outcome is not None and outcome[0] == "done":
                data = outcome[1]
                store.finish_done(self.sessions, data["result"], data["summary"], data["result_dir"])
                job.state, job.bars_done = "done", job.bars_total
            else:
                if outcome is not None:
                    error, missing = outcome[1]["error"], bool(outcome[1].get("missing"))
                else:
                    error = f"the worker stopped unexpectedly (exit code {job.process.exitcode})"
                job.state = "failed"
                store.finish_other(self.sessions, spec.run_id, "failed", error)
        except Exception as exc:
            log.exception("backtest %s: storing the outcome failed", spec.run_id)
            job.state, error = "failed", f"storing the result failed: {exc}"
            try:
                store.finish_other(self.sessions, spec.run_id, "failed", error)
            except Exception:
                log.exception("backtest %s: could not mark the run failed", spec.run_id)
        if job.state == "failed":
            log.warning("backtest %s failed: %s", spec.run_id, error)
        return JobProgress(spec.run_id, job.owner, job.state, job.bars_done, job.bars_total,
                           self._clock() - job.started, error, missing)

    def _conclude_hyperopt(self, job: _Job, outcome: tuple[str, dict[str, Any]] | None) -> JobProgress:
        error, missing, result = "", False, None
        if job.cancel_requested:
            job.state = "cancelled"
        elif outcome is not None and outcome[0] == "done":
            job.state, job.bars_done, result = "done", job.bars_total, outcome[1]["summary"]
        else:
            if outcome is not None:
                error, missing = outcome[1]["error"], bool(outcome[1].get("missing"))
            else:
                error = f"the worker stopped unexpectedly (exit code {job.process.exitcode})"
            job.state = "failed"
            log.warning("%s %s failed: %s", _kind(job.spec), job.spec.run_id, error)
        return JobProgress(job.spec.run_id, job.owner, job.state, job.bars_done, job.bars_total,
                           self._clock() - job.started, error, missing, kind=_kind(job.spec), fold=job.fold,
                           folds=job.folds, best_score=job.best_score, result=result)


def _kind(spec: Any) -> str:
    if isinstance(spec, TrainJobSpec):
        return "train"
    return "hyperopt" if isinstance(spec, HyperoptJobSpec) else "backtest"


def _stop(process: Any) -> None:
    """SIGTERM, then SIGKILL for a worker that does not go."""
    if process.is_alive():
        process.terminate()
        process.join(TERMINATE_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join(TERMINATE_WAIT_S)
