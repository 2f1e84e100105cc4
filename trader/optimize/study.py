"""Running a walk-forward hyperopt: one optuna study per fold, trials in this process or in worker processes.

Each fold's study is named ``<study>.fold<k>`` and holds the fold's windows and settings as a signature in its
user attributes, so resuming (same name, same storage) adds trials to it and a mismatched resume is refused
instead of silently mixing incomparable trials. Several machines pointing at one RDB storage with one study name
share the trials of every fold; each machine then tests the fold's best parameters out of sample itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from trader.backtest import data_prep
from trader.backtest.runner import BacktestRequest, BacktestResult, resolve_strategy, run_backtest
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir
from trader.data.timeframes import timeframe_ms
from trader.model.rules import resolve_rules
from trader.optimize.losses import PENALTY, Loss, make_loss
from trader.optimize.results import FoldResult, HyperoptResult
from trader.optimize.samplers import SAMPLERS, make_sampler
from trader.optimize.spaces import Dimension, grid_size, select_dimensions, suggest, to_strategy_params
from trader.optimize.walkforward import Fold, walk_forward
from trader.screening.engine import (
    ENGINE_BACKTRADER,
    ENGINE_SCREENING,
    ScreeningData,
    data_key,
    prepare,
    run_screening,
    twin_for,
)
from trader.screening.parity import compare_trades
from trader.strategy.base import FuturesStrategy

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class HyperoptRequest:
    strategy: str | type[FuturesStrategy] = "rsi_bollinger"
    pairs: tuple[str, ...] = ("BTC/USDT:USDT",)
    timeframe: str = "15m"
    start_ms: int | None = None  # None: the start of the data
    end_ms: int | None = None  # exclusive; None: the end of the data
    leverage: int = 25
    initial_wallet: float = 10_000.0
    data_dir: Path | None = None  # None: the sample data shipped with the package
    spaces: tuple[str, ...] = ("buy", "sell")
    epochs: int = 100  # new trials per fold on this machine
    sampler: str = "tpe"
    loss: str = "sharpe"
    min_trades: int = 1
    drawdown_penalty: float = 1.0
    folds: int | None = 3
    train_days: float | None = None
    test_days: float | None = None
    jobs: int = 1
    storage: str | None = None  # RDB URL; None: in memory (a temporary SQLite file when jobs > 1)
    study_name: str | None = None  # None: derived from the settings, so rerunning them resumes
    seed: int = 42
    # "auto": the screening engine (trader/screening, trade-for-trade equal to Backtrader) when the strategy has a
    # twin for this request, else Backtrader; "screening" refuses a request without a twin; "backtrader" forces it.
    engine: str = "auto"


@dataclass(frozen=True)
class HyperoptProgress:
    fold: int  # 0-based
    folds: int
    trials_done: int  # finished in this fold by this run
    trials_target: int
    best_score: float | None
    stage: str  # "optimising", "testing", "done"

    @property
    def fraction(self) -> float:
        inner = min(1.0, self.trials_done / self.trials_target) if self.trials_target else 1.0
        return 1.0 if self.stage == "done" else (self.fold + inner) / self.folds

    def message(self) -> str:
        if self.stage == "done":
            return "done"
        best = "-" if self.best_score is None else f"{self.best_score:.3f}"
        return (f"fold {self.fold + 1}/{self.folds} {self.stage}: trial {self.trials_done}/{self.trials_target}, "
                f"best {best}")


ProgressCallback = Callable[[HyperoptProgress], None]
CancelHook = Callable[[], bool]


@dataclass(frozen=True)
class _Storage:
    kind: str  # "memory" or "rdb"
    target: str  # the URL

    def open(self) -> optuna.storages.BaseStorage:
        if self.kind == "rdb":
            sqlite = self.target.startswith("sqlite")
            # Several processes write one SQLite file: wait for the lock rather than fail a trial.
            kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
            rdb = _open_rdb(self.target, kwargs)
            if not sqlite:
                return rdb
            # optuna commits once per suggested parameter; with SQLite's default full fsync per commit that cost
            # ~55 ms a trial here, WAL with normal sync ~20 ms (a power cut may lose the last trials, never corrupt
            # the file; SQLite storage is one-machine-only anyway). Pooled connections are dropped to get the pragmas.
            event.listen(rdb.engine, "connect", _sqlite_pragmas)
            rdb.engine.dispose()
            return rdb
        return optuna.storages.InMemoryStorage()


class StorageError(ValueError):
    """The storage URL is well formed but the database cannot be opened (host, credentials, permissions)."""


def _open_rdb(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    # Machines (or the workers of a run) starting together on a fresh database race to create optuna's tables;
    # the loser gets an integrity or "already exists" error and finds the schema in place on a retry.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except SQLAlchemyError as exc:
            if attempt == 4:
                raise StorageError(f"cannot open storage {hidden_password(url)}: {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0]}") from exc
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@dataclass(frozen=True)
class Plan:
    """A validated request: everything resolved before any trial runs or any file is written."""

    request: HyperoptRequest
    strategy: type[FuturesStrategy]
    strategy_name: str
    pairs: tuple[str, ...]
    dims: tuple[Dimension, ...]
    loss: Loss
    folds: tuple[Fold, ...]
    study_name: str
    signature: dict[str, Any]
    data_dir: Path
    engine: str = ENGINE_BACKTRADER  # what the trials run on
    engine_note: str = ""  # why Backtrader, when the screening engine was not used


def check_storage_url(url: str) -> None:
    """Raise ValueError unless ``url`` is an SQLAlchemy URL optuna can share (SQLite file, PostgreSQL, MySQL)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise ValueError(f"storage {url!r} is not a database URL (e.g. sqlite:///hyperopt.sqlite, "
                         "postgresql://user:pass@host/db)") from None
    backend = u.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise ValueError(f"storage backend {backend!r} is not supported; use sqlite, postgresql or mysql")
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ValueError("an SQLite storage needs a file (sqlite:///path/hyperopt.sqlite)")
        parent = Path(u.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ValueError(f"storage directory {parent} does not exist")
    try:
        u.get_dialect().import_dbapi()
    except ImportError as exc:
        raise ValueError(f"storage {backend}: database driver missing ({exc.name}); install it in this "
                         "environment, e.g. psycopg[binary] for PostgreSQL or mysqlclient/PyMySQL for MySQL") from None


def hidden_password(url: str | None) -> str:
    if not url:
        return "memory"
    return make_url(url).render_as_string(hide_password=True)


def plan_hyperopt(request: HyperoptRequest) -> Plan:
    """Validate and resolve a request (raises ValueError for bad arguments, FileNotFoundError for missing data)."""
    cls = resolve_strategy(request.strategy)
    if request.epochs <= 0:
        raise ValueError("epochs must be > 0")
    if request.jobs < 1:
        raise ValueError("jobs must be ≥ 1")
    if request.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {request.sampler!r}; known: {', '.join(SAMPLERS)}")
    if request.folds is not None and request.folds < 1:
        raise ValueError("folds must be ≥ 1")
    for name in ("train_days", "test_days"):
        v = getattr(request, name)
        if v is not None and v <= 0:
            raise ValueError(f"{name} must be > 0")
    dims = tuple(select_dimensions(cls, request.spaces))
    loss = make_loss(request.loss, request.min_trades, request.drawdown_penalty)
    if request.storage is not None:
        check_storage_url(request.storage)
    tf_ms = timeframe_ms(request.timeframe)
    pairs = tuple(normalize_pair(p) for p in request.pairs)
    if not pairs:
        raise ValueError("no pairs")
    data_dir = Path(request.data_dir) if request.data_dir else bundled_data_dir()
    first, end = data_span(data_dir, pairs, request.timeframe, request.start_ms, request.end_ms)
    folds = walk_forward(first, end, folds=request.folds,
                         train_ms=None if request.train_days is None else int(request.train_days * DAY_MS),
                         test_ms=None if request.test_days is None else int(request.test_days * DAY_MS),
                         bar_ms=tf_ms)
    strategy_name = request.strategy if isinstance(request.strategy, str) else cls.__name__
    signature = {
        "strategy": strategy_name, "pairs": list(pairs), "timeframe": request.timeframe,
        "leverage": request.leverage, "wallet": request.initial_wallet, "loss": loss.name,
        "min_trades": loss.min_trades, "drawdown_penalty": loss.drawdown_penalty,
        "dimensions": [d.name for d in dims],
        "folds": [[f.train_start_ms, f.train_end_ms, f.test_start_ms, f.test_end_ms] for f in folds],
    }
    digest = hashlib.sha1(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:8]
    name = request.study_name or f"{strategy_name}-{request.timeframe}-{loss.name}-{digest}"
    engine, note = choose_engine(request, cls, pairs, data_dir)
    return Plan(request, cls, strategy_name, pairs, dims, loss, tuple(folds), name, signature, data_dir, engine,
                note)


ENGINES = ("auto", ENGINE_SCREENING, ENGINE_BACKTRADER)


def choose_engine(request: HyperoptRequest, cls: type[FuturesStrategy], pairs: tuple[str, ...], data_dir: Path,
                  ) -> tuple[str, str]:
    """(engine, why not screening): the engine the trials run on. The study's signature does not include it:
    both engines give the same trades, so trials from either belong to one study."""
    if request.engine not in ENGINES:
        raise ValueError(f"unknown engine {request.engine!r}; known: {', '.join(ENGINES)}")
    if request.engine == ENGINE_BACKTRADER:
        return ENGINE_BACKTRADER, "Backtrader requested"
    twin, why = twin_for(BacktestRequest(strategy=cls, pairs=pairs, timeframe=request.timeframe,
                                         leverage=request.leverage, data_dir=data_dir))
    if twin is None:
        if request.engine == ENGINE_SCREENING:
            raise ValueError(f"no screening engine for this run: {why}")
        return ENGINE_BACKTRADER, why
    return ENGINE_SCREENING, ""


def data_span(data_dir: Path, pairs: Sequence[str], timeframe: str, start_ms: int | None, end_ms: int | None,
              ) -> tuple[int, int]:
    """[first bar open, last bar close) of the bars all pairs have inside the requested range."""
    frames = {p: data_prep.load_pair_candles(data_dir, p, timeframe, start_ms, end_ms) for p in pairs}
    common = data_prep.align(frames)
    if not len(common):
        raise ValueError("no candles in the requested range for all pairs together")
    return int(common[0]), int(common[-1]) + timeframe_ms(timeframe)


@dataclass(frozen=True)
class _Objective:
    """Picklable, so worker processes can run it: one backtest on the fold's train window per trial."""

    base: BacktestRequest
    strategy: type[FuturesStrategy]  # pickled by reference: worker processes import it
    dims: tuple[Dimension, ...]
    loss: Loss
    engine: str = ENGINE_BACKTRADER

    def __call__(self, trial: optuna.Trial) -> float:
        values = suggest(trial, self.dims)
        request = replace(self.base, strategy_params=to_strategy_params(self.strategy, values))
        try:
            result = run_trial(request, self.engine)
        except ValueError as exc:  # e.g. a window with no usable segment for this warm-up length
            trial.set_user_attr("error", str(exc))
            return PENALTY
        trial.set_user_attr("metrics", result.metrics.to_dict())
        trial.set_user_attr("pid", os.getpid())  # which worker ran it: shows the parallelism in the storage
        return self.loss.score(result.metrics)


# The screening engine's loaded window, per process: every trial of a fold reads the same candles, so they are
# read from disk once (Backtrader trials load them per trial, as run_backtest always has).
_DATA: dict[tuple[Any, ...], ScreeningData] = {}


def run_trial(request: BacktestRequest, engine: str) -> BacktestResult:
    if engine != ENGINE_SCREENING:
        return run_backtest(request)
    probe = data_key(request)
    data = _DATA.get(probe)
    if data is None:
        _DATA.clear()  # one window at a time: folds run one after another
        data = _DATA[probe] = prepare(request)
    return run_screening(request, data)


def recheck_on_backtrader(request: BacktestRequest, loss: Loss) -> tuple[BacktestResult, dict[str, Any]]:
    """The best parameters re-run through Backtrader (the engine live shares) before they are reported or applied;
    the report says whether the screening run agreed trade for trade and on the score."""
    bt = run_backtest(request)
    sc = run_trial(request, ENGINE_SCREENING)
    specs = resolve_rules(bt.pairs, request.data_dir, request.start_ms, request.end_ms).specs
    problems = compare_trades(bt.trades, sc.trades, specs)
    bt_score, sc_score = loss.score(bt.metrics), loss.score(sc.metrics)
    return bt, {"engine": "backtrader", "trades": len(bt.trades), "trades_equal": not problems,
                "score_backtrader": bt_score, "score_screening": sc_score,
                "scores_equal": math.isclose(bt_score, sc_score, rel_tol=1e-9, abs_tol=1e-9),
                "differences": [str(p) for p in problems[:5]]}


# Set in each worker process by the pool initializer: an Event can only reach a process by inheritance.
_STOP: Any = None
_BARRIER: Any = None


def _init_worker(stop: Any, barrier: Any) -> None:
    global _STOP, _BARRIER
    _STOP, _BARRIER = stop, barrier
    # Ctrl-C reaches the whole process group; the parent turns it into the stop event so running trials end
    # cleanly instead of every worker dumping a traceback mid-backtest.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _ready(_n: int) -> int:
    # Every worker blocks here until all have started, so the pool is fully up before the first fold: otherwise
    # the first process out of its imports can take every share of a fold and the run is serial after all.
    _BARRIER.wait(timeout=120)
    return os.getpid()


def _work(storage: _Storage, study_name: str, objective: _Objective, sampler: str, seed: int, epochs: int,
          n_trials: int) -> int:
    study = optuna.load_study(study_name=study_name, storage=storage.open(),
                              sampler=make_sampler(sampler, objective.dims, seed, epochs))

    def stop_if_cancelled(st: optuna.Study, _t: optuna.trial.FrozenTrial) -> None:
        if _STOP is not None and _STOP.is_set():
            st.stop()

    if _STOP is not None and _STOP.is_set():
        return 0
    study.optimize(objective, n_trials=n_trials, callbacks=[stop_if_cancelled], gc_after_trial=False)
    return n_trials


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=_FINISHED)


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(done, key=lambda t: t.value) if done else None


def run_hyperopt(request: HyperoptRequest, progress: ProgressCallback | None = None,
                 cancel: CancelHook | None = None, plan: Plan | None = None) -> HyperoptResult:
    """Optimise each walk-forward fold on its train window and test the fold's best parameters on its test window.

    ``progress`` is called after every trial (``jobs`` = 1) or about twice a second (``jobs`` > 1). ``cancel`` is
    polled as often; once it returns True, running trials finish, no new one starts, the current fold is dropped
    and the result comes back with ``cancelled=True`` and the folds completed so far.
    """
    plan = plan or plan_hyperopt(request)
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report = progress or (lambda _p: None)
    is_cancelled = cancel or (lambda: False)
    result = HyperoptResult(
        study_name=plan.study_name, strategy=plan.strategy_name, pairs=list(plan.pairs),
        timeframe=request.timeframe, leverage=request.leverage, sampler=request.sampler, loss=plan.loss.name,
        loss_description=plan.loss.description, spaces=list(dict.fromkeys(request.spaces)),
        dimensions=[d.name for d in plan.dims], epochs=request.epochs, jobs=request.jobs,
        storage=hidden_password(request.storage), started_utc=started, engine=plan.engine,
        engine_note=plan.engine_note)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if request.storage:
        storage = _Storage("rdb", request.storage)
    elif request.jobs > 1:
        # Worker processes cannot share an in-memory storage. A throwaway SQLite file (WAL) measured faster here
        # than optuna's journal file, whose lock is contended by every parameter write.
        tmp = tempfile.TemporaryDirectory(prefix="bsmart-hyperopt-")
        storage = _Storage("rdb", f"sqlite:///{Path(tmp.name) / 'hyperopt.sqlite'}")
    else:
        storage = _Storage("memory", "")
    opened = storage.open()
    pool: cf.ProcessPoolExecutor | None = None
    stop = None
    try:
        if request.jobs > 1:
            ctx = mp.get_context("spawn")  # never fork a process that may run threads (the bot, an event loop)
            stop = ctx.Event()
            pool = cf.ProcessPoolExecutor(max_workers=request.jobs, mp_context=ctx, initializer=_init_worker,
                                          initargs=(stop, ctx.Barrier(request.jobs)))
            list(pool.map(_ready, range(request.jobs)))
        for fold in plan.folds:
            if is_cancelled():
                result.cancelled = True
                break
            fold_result = _run_fold(plan, fold, opened, storage, pool, stop, report, is_cancelled)
            if fold_result is None:
                result.cancelled = True
                break
            result.folds.append(fold_result)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if tmp is not None:
            tmp.cleanup()
    result.elapsed_s = time.perf_counter() - t0
    if not result.cancelled:
        report(HyperoptProgress(len(plan.folds) - 1, len(plan.folds), 0, 0, result.oos_score, "done"))
    return result


def _run_fold(plan: Plan, fold: Fold, opened: optuna.storages.BaseStorage, storage: _Storage,
              pool: cf.ProcessPoolExecutor | None, stop: Any, report: ProgressCallback,
              is_cancelled: CancelHook) -> FoldResult | None:
    request = plan.request
    n_folds = len(plan.folds)
    name = f"{plan.study_name}.fold{fold.index}"
    study = optuna.create_study(study_name=name, storage=opened, direction="maximize", load_if_exists=True)
    sig = study.user_attrs.get("signature")
    if sig is None:
        study.set_user_attr("signature", plan.signature)
    elif sig != json.loads(json.dumps(plan.signature)):
        differ = sorted(k for k in set(sig) | set(plan.signature) if sig.get(k) != plan.signature.get(k))
        raise ValueError(f"study {plan.study_name!r} exists with other settings ({', '.join(differ)}); "
                         "use another --study-name or the original settings")
    before = len(_finished(study))
    target = request.epochs
    if request.sampler == "grid":
        seen = {tuple(sorted(t.params.items())) for t in _finished(study)}
        target = min(target, grid_size(plan.dims) - len(seen))
    # Seeds differ per worker and per resume, or every worker (and every rerun) would replay the same draws.
    seed = request.seed + 1000 * before
    objective = _Objective(
        base=BacktestRequest(strategy=plan.strategy, pairs=plan.pairs, timeframe=request.timeframe,
                             start_ms=fold.train_start_ms, end_ms=fold.train_end_ms, leverage=request.leverage,
                             initial_wallet=request.initial_wallet, data_dir=plan.data_dir),
        strategy=plan.strategy, dims=plan.dims, loss=plan.loss, engine=plan.engine)

    def state(stage: str) -> HyperoptProgress:
        best = _best(study)
        return HyperoptProgress(fold.index, n_folds, len(_finished(study)) - before, target,
                                None if best is None else best.value, stage)

    cancelled = False
    if target > 0 and pool is None:
        def after_trial(st: optuna.Study, _t: optuna.trial.FrozenTrial) -> None:
            nonlocal cancelled
            report(state("optimising"))
            if is_cancelled():
                cancelled = True
                st.stop()

        study.sampler = make_sampler(request.sampler, plan.dims, seed, request.epochs)
        study.optimize(objective, n_trials=target, callbacks=[after_trial], gc_after_trial=False)
    elif target > 0 and pool is not None:
        shares = [target // request.jobs + (i < target % request.jobs) for i in range(request.jobs)]
        futures = [pool.submit(_work, storage, name, objective, request.sampler, seed + i, request.epochs, n)
                   for i, n in enumerate(shares) if n]
        while True:
            try:
                done, _ = cf.wait(futures, timeout=0.5)
            except KeyboardInterrupt:
                stop.set()
                cf.wait(futures)
                raise
            report(state("optimising"))
            if not cancelled and is_cancelled():
                cancelled = True
                stop.set()
            if len(done) == len(futures):
                break
        for f in futures:
            f.result()  # a worker's exception is this run's exception
    if cancelled:
        return None
    best = _best(study)
    if best is None:
        raise RuntimeError(f"fold {fold.index}: no trial completed")
    report(state("testing"))
    params = to_strategy_params(plan.strategy, best.params)
    is_score, is_metrics, recheck = float(best.value), dict(best.user_attrs.get("metrics", {})), None
    if plan.engine == ENGINE_SCREENING:
        try:
            bt, recheck = recheck_on_backtrader(replace(objective.base, strategy_params=params), plan.loss)
            is_score, is_metrics = recheck["score_backtrader"], bt.metrics.to_dict()
            if not (recheck["trades_equal"] and recheck["scores_equal"]):
                log.warning("fold %d: screening and Backtrader differ on the best parameters: %s", fold.index,
                            "; ".join(recheck["differences"]) or "scores differ")
        except ValueError as exc:
            recheck = {"engine": "backtrader", "error": str(exc)}
    oos_request = replace(objective.base, start_ms=fold.test_start_ms, end_ms=fold.test_end_ms,
                          strategy_params=params)
    try:
        oos = run_backtest(oos_request)
        oos_metrics, oos_score = oos.metrics.to_dict(), plan.loss.score(oos.metrics)
    except ValueError as exc:
        log.warning("fold %d: out-of-sample backtest failed: %s", fold.index, exc)
        oos_metrics, oos_score = {"error": str(exc)}, PENALTY
    total = len(_finished(study))
    return FoldResult(fold=fold, study_name=name, trials=total, new_trials=total - before,
                      best_params=dict(best.params), strategy_params=params, is_score=is_score,
                      is_metrics=is_metrics, oos_score=oos_score, oos_metrics=oos_metrics, engine=plan.engine,
                      recheck=recheck)


__all__ = ["HyperoptProgress", "HyperoptRequest", "Plan", "StorageError", "check_storage_url", "data_span",
           "plan_hyperopt", "run_hyperopt"]
