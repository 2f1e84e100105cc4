"""ResearchService: backtests, hyperparameter searches and model training in worker processes (trader.jobs), and
the model registry's reads (models, predictions), for the front ends.

Split from the trading service (trader/service/service.py) so that what changes money and what studies it live
apart: nothing here places an order or changes a setting the engine trades with. Applying a search's parameters
is a trading action and stays on ``TradingService.apply_strategy_params`` (confirmed and audited there).
Every mutating call is audited like the trading service's (trader/service/auditing.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trader.bootstrap import Core
from trader.config.schema import Settings
from trader.jobs import data as job_data
from trader.jobs import hyperopt as hyperopt_job
from trader.jobs import store as job_store
from trader.jobs import train as train_job
from trader.jobs.runner import BacktestJobs, JobProgress, JobRefused
from trader.jobs.worker import BacktestJobSpec
from trader.persistence.audit import Actor
from trader.risk.limits import declared_risk_params
from trader.risk.liquidity import LiquidityRules
from trader.service.auditing import audited
from trader.service.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelsView:
    """/models: the active models (trader.ml.live.MLState) and every stored version (ModelRegistry.rows())."""

    state: Any  # MLState
    rows: list[dict[str, Any]]
    now_ms: int


@dataclass(frozen=True)
class PredictView:
    """/predict: the prediction for a pair as of its newest stored 5m bar, or why there is none."""

    pair: str
    prediction: Any = None  # trader.ml.predictor.Prediction (it may itself be withheld: .withheld_reason)
    at_ms: int | None = None  # close of the bar predicted from
    reason: str = ""  # "no_model" | "no_data" | free text; empty when ``prediction`` is set
    now_ms: int = 0
    source: str = "store"  # "engine": the running engine's newest 5m bar (trader.ml.live.LivePredictions)


class ResearchService:
    MAX_BACKTEST_PAIRS = 10
    BACKTEST_WALLET = 10_000.0

    def __init__(self, settings: Settings, core: Core, current: Callable[[], tuple[list[str], int]]):
        self.settings = settings
        self.core = core
        self._current = current  # () -> (whitelist, leverage) as the trading service holds them now

    @property
    def pairs(self) -> list[str]:
        return list(self._current()[0])

    @property
    def leverage(self) -> int:
        return int(self._current()[1])

    async def _audited(self, actor: Actor, action: str, arguments: dict[str, Any], fn: Any) -> Any:
        return await audited(self.core, actor, action, arguments, fn)

    MAX_BACKTEST_PAIRS = 10
    BACKTEST_WALLET = 10_000.0

    @property
    def backtest_jobs(self) -> BacktestJobs:
        """Created on first use, so a host that never backtests never spawns or sweeps anything."""
        jobs = getattr(self, "_backtest_jobs", None)
        if jobs is None:
            jobs = self._backtest_jobs = BacktestJobs(self.core.sessions)
        return jobs

    def _backtest_spec(self, ask: job_data.BacktestAsk) -> BacktestJobSpec:
        """Validate a request and check the candle store; raises ServiceError saying what is wrong."""
        from trader.backtest.runner import new_run_id
        from trader.strategy.reference import STRATEGIES

        _known(ask.strategy, ask.timeframe)
        pairs = _canonical(ask.pairs, self.settings.stake_currency)
        rng = _timerange(ask.timerange)
        if not pairs or len(pairs) > self.MAX_BACKTEST_PAIRS:
            raise ServiceError("invalid_argument", f"give 1 to {self.MAX_BACKTEST_PAIRS} pairs", reason="pair_count",
                               params={"maximum": self.MAX_BACKTEST_PAIRS})
        if rng.start_ms is None:
            raise ServiceError("invalid_argument", "the time range needs a start date", reason="range_needs_start")
        data_dir = job_data.choose_data_dir(self.settings.data_dir, pairs, ask.timeframe)
        lacking = job_data.missing(data_dir, pairs, ask.timeframe, rng)
        if lacking is not None:
            raise ServiceError("refused", f"no stored candles for {', '.join(lacking.pairs)} over {lacking.timerange}; "
                                          f"run: {lacking.command}", reason="missing_data",
                               params={"pairs": list(lacking.pairs), "timerange": lacking.timerange},
                               missing_data=lacking)
        return BacktestJobSpec(
            run_id=new_run_id(), strategy=ask.strategy, pairs=pairs, timeframe=ask.timeframe, start_ms=rng.start_ms,
            end_ms=rng.end_ms, timerange=str(rng), leverage=self.leverage, initial_wallet=self.BACKTEST_WALLET,
            data_dir=str(data_dir), results_dir=str((self.settings.user_data_dir / "backtest_results").resolve()),
            strategy_params=tuple(declared_risk_params(self.settings, STRATEGIES[ask.strategy].param_values()).items()),
            liquidity=LiquidityRules.from_config(self.settings.risk.liquidity))

    async def start_backtest(self, actor: Actor, ask: job_data.BacktestAsk,
                             on_progress: Callable[[JobProgress], None]) -> str:
        """Start a backtest in a worker process and return its id (also its BacktestRun id) at once.

        ``on_progress`` is called from a follower thread (not this loop): at least every second while the job
        runs, then once with a final state (done, failed, cancelled) after the outcome is stored. One heavy job
        per user; refusals are ServiceErrors: ``refused`` with ``details["missing_data"]`` (a
        ``trader.jobs.data.MissingData`` naming the download command) or ``conflict`` with
        ``details["running"]`` (the job already running)."""
        owner = f"{actor.source}:{actor.user_id}"

        async def run() -> str:
            spec = await asyncio.to_thread(self._backtest_spec, ask)
            try:
                return await asyncio.to_thread(self.backtest_jobs.start, owner, spec, on_progress,
                                               requested_by=actor.user_id)
            except JobRefused as exc:
                raise _job_refused(exc, "backtests") from None

        arguments = {"strategy": ask.strategy, "pairs": list(ask.pairs), "timeframe": ask.timeframe,
                     "timerange": ask.timerange}
        return await self._audited(actor, "backtest_start", arguments, run)

    async def cancel_backtest(self, actor: Actor, job_id: str) -> None:
        """Terminate a running backtest; its run is stored as cancelled. Its owner or an admin may."""
        await self._cancel_job(actor, job_id, None, "backtest", "backtest_cancel")

    async def _cancel_job(self, actor: Actor, job_id: str, kind: str | None, noun: str, action: str) -> None:
        """Stop a running heavy job of ``kind`` (any kind with None), audited as ``action``: its owner or an admin
        may; the refusals name the job as ``noun``."""
        async def run() -> None:
            job = self.backtest_jobs.get(job_id)
            if job is None or (kind is not None and job.kind != kind):
                raise ServiceError("conflict", f"{noun} {job_id} is not running", reason="job_not_running",
                                   params={"id": str(job_id)[-12:]})
            if job.owner != f"{actor.source}:{actor.user_id}" and actor.role != "admin":
                raise ServiceError("refused", f"{noun} {job_id} was started by someone else", reason="job_not_yours",
                                   params={"id": str(job_id)[-12:]})
            if not await asyncio.to_thread(self.backtest_jobs.cancel, job_id):
                raise ServiceError("conflict", f"{noun} {job_id} has already finished", reason="job_finished",
                                   params={"id": str(job_id)[-12:]})

        await self._audited(actor, action, {"job_id": job_id}, run)

    async def close_backtests(self) -> None:
        """Stop every running backtest (a host shutting down); their runs are stored as cancelled."""
        jobs = getattr(self, "_backtest_jobs", None)
        if jobs is not None:
            await asyncio.to_thread(jobs.close)

    async def backtests(self, limit: int = 10) -> list[job_store.RunView]:
        """Stored runs, newest first (running, done, failed and cancelled ones)."""
        self.backtest_jobs  # noqa: B018 -- first use closes runs a previous process left "running"
        return await asyncio.to_thread(job_store.recent_runs, self.core.sessions, limit)

    async def backtest(self, run_id: str) -> job_store.StoredRun | None:
        """One run by id (or a unique ending of it, 6+ characters) with its result read back from the export."""
        self.backtest_jobs  # noqa: B018 -- first use closes runs a previous process left "running"

        def load() -> job_store.StoredRun | None:
            view = job_store.find_run(self.core.sessions, run_id)
            if view is None:
                return None
            result = job_store.load_result(view.result_dir) if view.status == "done" and view.result_dir else None
            return job_store.StoredRun(view, result)

        return await asyncio.to_thread(load)

    async def backtest_data(self, pairs: list[str], timeframe: str) -> job_data.Span | None:
        """The stretch of candles stored for all ``pairs`` (what a backtest could cover), None if nothing."""
        def find() -> job_data.Span | None:
            canonical = job_data.canonical_pairs(pairs, self.settings.stake_currency)
            data_dir = job_data.choose_data_dir(self.settings.data_dir, canonical, timeframe)
            return job_data.common_span(data_dir, canonical, timeframe)

        try:
            return await asyncio.to_thread(find)
        except ValueError as exc:
            raise ServiceError("invalid_argument", str(exc), reason="bad_pairs",
                               params={"texts": [str(p)[:40] for p in pairs]}) from None

    # -- hyperopt in a worker process and applying its parameters ---------------------------------------------------
    def _hyperopt_spec(self, ask: hyperopt_job.HyperoptAsk) -> hyperopt_job.HyperoptJobSpec:
        """Validate a bounded run and check the candle store, without importing optuna in this process;
        raises ServiceError saying what is wrong."""
        from trader.backtest.runner import new_run_id
        from trader.optimize.losses import make_loss
        from trader.optimize.spaces import select_dimensions
        from trader.optimize.walkforward import walk_forward
        from trader.strategy.reference import STRATEGIES

        h = hyperopt_job
        strategy = ask.strategy or self.settings.strategy
        _known(strategy, ask.timeframe)
        if not 1 <= ask.epochs <= h.MAX_EPOCHS:
            raise ServiceError("invalid_argument", f"epochs must be from 1 to {h.MAX_EPOCHS}, got {ask.epochs}",
                               reason="epochs_range", params={"maximum": h.MAX_EPOCHS, "value": ask.epochs})
        if not 1 <= ask.folds <= h.MAX_FOLDS:
            raise ServiceError("invalid_argument", f"folds must be from 1 to {h.MAX_FOLDS}, got {ask.folds}",
                               reason="folds_range", params={"maximum": h.MAX_FOLDS, "value": ask.folds})
        if ask.loss not in h.LOSSES:
            raise ServiceError("invalid_argument", f"loss {ask.loss!r} is not one of {', '.join(h.LOSSES)}",
                               reason="bad_loss", params={"loss": str(ask.loss)[:40], "choices": list(h.LOSSES)})
        cls = STRATEGIES[strategy]
        try:
            select_dimensions(cls, ask.spaces)
        except ValueError as exc:
            raise ServiceError("invalid_argument", str(exc), reason="bad_spaces",
                               params={"spaces": [str(x)[:20] for x in ask.spaces]}) from None
        try:
            make_loss(ask.loss)
        except ValueError as exc:
            raise ServiceError("invalid_argument", str(exc), reason="bad_loss",
                               params={"loss": str(ask.loss)[:40], "choices": list(h.LOSSES)}) from None
        pairs = _canonical(ask.pairs if ask.pairs is not None else self.pairs[:h.MAX_PAIRS],
                           self.settings.stake_currency)
        if not pairs or len(pairs) > h.MAX_PAIRS:
            raise ServiceError("invalid_argument", f"give 1 to {h.MAX_PAIRS} pairs", reason="pair_count",
                               params={"maximum": h.MAX_PAIRS})
        data_dir = job_data.choose_data_dir(self.settings.data_dir, pairs, ask.timeframe)
        try:
            if ask.timerange is not None:
                rng = job_data.resolve_range(ask.timerange)
            else:
                stored = job_data.common_span(data_dir, pairs, ask.timeframe)
                # The newest whole UTC days stored; with nothing stored, the days before today name the download.
                text = f"{h.DEFAULT_DAYS}d"
                if stored is not None:
                    end = stored.end_ms - stored.end_ms % job_data.DAY_MS
                    start = max(end - h.DEFAULT_DAYS * job_data.DAY_MS,
                                stored.first_ms - stored.first_ms % job_data.DAY_MS + job_data.DAY_MS)
                    if end > start:
                        text = f"{_utc_day(start)}-{_utc_day(end)}"
                rng = job_data.resolve_range(text)
        except ValueError as exc:
            raise ServiceError("invalid_argument", str(exc), reason="bad_timerange",
                               params={"text": str(ask.timerange or "")[:40]}) from None
        if rng.start_ms is None or rng.end_ms is None:
            raise ServiceError("invalid_argument", "the time range needs a start and an end date",
                               reason="range_needs_both")
        lacking = job_data.missing(data_dir, pairs, ask.timeframe, rng)
        if lacking is not None:
            raise ServiceError("refused", f"no stored candles for {', '.join(lacking.pairs)} over {lacking.timerange}; "
                                          f"run: {lacking.command}", reason="missing_data",
                               params={"pairs": list(lacking.pairs), "timerange": lacking.timerange},
                               missing_data=lacking)
        bar_ms = job_data.timeframe_ms(ask.timeframe)
        try:
            folds = walk_forward(rng.start_ms, rng.end_ms, folds=ask.folds, bar_ms=bar_ms)
        except ValueError as exc:  # the range cannot be cut into that many train/test windows
            raise ServiceError("invalid_argument", str(exc), reason="folds_do_not_fit",
                               params={"folds": ask.folds}) from None
        # Indicators warm up inside each out-of-sample window: one barely longer than that cannot judge anything.
        warmup = cls.warmup_bars(cls.param_values())
        test_bars = (folds[0].test_end_ms - folds[0].test_start_ms) // bar_ms
        if test_bars < 2 * warmup:
            raise ServiceError("invalid_argument",
                               f"the range is too short: each test window would hold {test_bars} bars, fewer than "
                               f"twice the strategy's warm-up ({warmup} bars); give a longer range or fewer folds",
                               reason="range_too_short", params={"bars": test_bars, "warmup": warmup})
        return hyperopt_job.HyperoptJobSpec(
            run_id=new_run_id(), strategy=strategy, pairs=pairs, timeframe=ask.timeframe, start_ms=rng.start_ms,
            end_ms=rng.end_ms, timerange=str(rng), leverage=self.leverage, initial_wallet=self.BACKTEST_WALLET,
            data_dir=str(data_dir), results_dir=str((self.settings.user_data_dir / "hyperopt_results").resolve()),
            spaces=tuple(dict.fromkeys(ask.spaces)), epochs=ask.epochs, folds=ask.folds, loss=ask.loss)

    async def start_hyperopt(self, actor: Actor, ask: hyperopt_job.HyperoptAsk,
                             on_progress: Callable[[JobProgress], None]) -> hyperopt_job.HyperoptJobSpec:
        """Start a bounded hyperopt (admins only) in a worker process; returns the resolved run at once.

        ``on_progress`` is called from a follower thread like a backtest's; the final call's ``result`` is the
        ``HyperoptSummary`` when the run finished. It counts as the user's one heavy job (backtests included).
        Refusals are ServiceErrors as for ``start_backtest``; ``conflict`` carries ``details["kind"]``."""
        owner = f"{actor.source}:{actor.user_id}"

        async def run() -> hyperopt_job.HyperoptJobSpec:
            if actor.role != "admin":
                raise ServiceError("refused", "only an admin may run a hyperopt", reason="admin_only_hyperopt")
            spec = await asyncio.to_thread(self._hyperopt_spec, ask)
            try:
                await asyncio.to_thread(self.backtest_jobs.start_hyperopt, owner, spec, on_progress)
            except JobRefused as exc:
                raise _job_refused(exc, "heavy jobs") from None
            return spec

        arguments = {"strategy": ask.strategy, "pairs": list(ask.pairs or ()), "timeframe": ask.timeframe,
                     "timerange": ask.timerange, "epochs": ask.epochs, "folds": ask.folds,
                     "spaces": list(ask.spaces), "loss": ask.loss}
        return await self._audited(actor, "hyperopt_start", arguments, run)

    async def cancel_hyperopt(self, actor: Actor, job_id: str) -> None:
        """Stop a running hyperopt (its owner or an admin); nothing of it is kept."""
        await self._cancel_job(actor, job_id, "hyperopt", "hyperopt", "hyperopt_cancel")


    # -- ML models: reads and training in a worker process ----------------------------------------------------------
    async def models(self) -> ModelsView:
        """The active models (checked, not loaded) and every stored version with its out-of-sample summary."""
        from trader.ml.live import ml_state
        from trader.ml.registry import ModelRegistry

        def read() -> ModelsView:
            now = int(time.time() * 1000)
            return ModelsView(ml_state(self.settings.models_dir, now), ModelRegistry(self.settings.models_dir).rows(now),
                              now)

        return await asyncio.to_thread(read)

    def _predictor(self) -> Any:
        """The active models, loaded once per set of active versions (a promotion reloads them)."""
        from trader.ml.predictor import Predictor
        from trader.ml.registry import ModelRegistry

        key = tuple(sorted(ModelRegistry(self.settings.models_dir).active().items()))
        cached = getattr(self, "_predictor_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        predictor = Predictor.load_active(self.settings.models_dir) if key else None
        self._predictor_cache = (key, predictor)
        return predictor

    async def predict(self, pair: str) -> PredictView:
        """Probabilities for ``pair`` as of the running engine's newest 5m bar when the engine's predictions have
        one (``source`` "engine"), else as of its newest stored bar (with the training base rates beside them), or
        the reason there are none (no usable model, no stored candles)."""
        from trader.ml.live import LOOKBACK_DAYS, StoreRows

        try:
            canonical = job_data.canonical_pairs([pair], self.settings.stake_currency)[0]
        except (ValueError, IndexError) as exc:
            raise ServiceError("invalid_argument", str(exc) or f"bad pair {pair!r}", reason="bad_pair",
                               params={"text": str(pair)[:40]}) from None

        def run() -> PredictView:
            now = int(time.time() * 1000)
            from trader.strategy.fusion import get_ml_provider

            latest = getattr(get_ml_provider(), "latest", None)
            live = latest(canonical) if latest is not None else None
            if live is not None and live.prediction is not None:
                # the running engine's own prediction of its newest bar; its age is the time since it was made
                return PredictView(canonical, live.prediction, live.close_ms,
                                   now_ms=live.close_ms + max(0, now - live.computed_ms), source="engine")
            predictor = self._predictor()
            if predictor is None:
                return PredictView(canonical, reason="no_model", now_ms=now)
            data_dir = job_data.choose_data_dir(self.settings.data_dir, [canonical], "1m")
            found = job_data.span(data_dir, canonical, "1m") or job_data.span(data_dir, canonical, "5m")
            if found is None:
                return PredictView(canonical, reason="no_data", now_ms=now)
            end = found.end_ms - found.end_ms % 300_000
            rows = StoreRows(data_dir, LOOKBACK_DAYS)(canonical, end)
            if rows is None or not len(rows.close_ms):
                return PredictView(canonical, reason="no_data", now_ms=now)
            at = int(rows.close_ms[-1])
            return PredictView(canonical, predictor.predict(rows.X.iloc[-predictor.required_rows:], at_ms=at,
                                                            now_ms=now), at, now_ms=now)

        return await asyncio.to_thread(run)

    def _train_spec(self, ask: train_job.TrainAsk) -> train_job.TrainJobSpec:
        from trader.backtest.runner import new_run_id

        t = train_job
        if ask.model not in t.KINDS:
            raise ServiceError("invalid_argument", f"model {ask.model!r} cannot be trained here; one of "
                                                   f"{', '.join(t.KINDS)}", reason="bad_model",
                               params={"model": str(ask.model)[:40], "choices": list(t.KINDS)})
        if not 1 <= ask.days <= t.MAX_DAYS:
            raise ServiceError("invalid_argument", f"days must be from 1 to {t.MAX_DAYS}, got {ask.days}",
                               reason="days_range", params={"low": 1, "high": t.MAX_DAYS, "days": ask.days})
        if ask.model in t.NETS and ask.days > t.NET_MAX_DAYS:
            raise ServiceError("invalid_argument", f"a {ask.model} trains on at most {t.NET_MAX_DAYS} days here, "
                                                   f"got {ask.days} (longer: bsmart train on the server)",
                               reason="net_days", params={"model": ask.model, "maximum": t.NET_MAX_DAYS,
                                                          "days": ask.days}, net_days=t.NET_MAX_DAYS)
        pairs = _canonical(ask.pairs if ask.pairs is not None else self.pairs[:2], self.settings.stake_currency)
        if not pairs or len(pairs) > t.MAX_PAIRS:
            raise ServiceError("invalid_argument", f"give 1 to {t.MAX_PAIRS} pairs", reason="pair_count",
                               params={"maximum": t.MAX_PAIRS})
        data_dir = job_data.choose_data_dir(self.settings.data_dir, pairs, "1m")
        stored = job_data.common_span(data_dir, pairs, "1m")
        if stored is None:
            rng = job_data.resolve_range(f"{ask.days}d")
            lacking = job_data.missing(data_dir, pairs, "1m", rng)
            raise ServiceError("refused", f"no stored candles for {', '.join(pairs)}"
                               + (f"; run: {lacking.command}" if lacking else ""), reason="missing_data",
                               params={"pairs": list(pairs), "timerange": f"{ask.days}d"}, missing_data=lacking)
        end = stored.end_ms
        start = max(stored.first_ms, end - ask.days * job_data.DAY_MS)
        return t.TrainJobSpec(run_id=new_run_id(), pairs=pairs, start_ms=start, end_ms=end,
                              timerange=f"{_utc_day(start)}-{_utc_day(end)}", data_dir=str(data_dir),
                              models_dir=str(self.settings.models_dir.resolve()), names=(ask.model,))

    async def start_train(self, actor: Actor, ask: train_job.TrainAsk,
                          on_progress: Callable[[JobProgress], None]) -> train_job.TrainJobSpec:
        """Train a model (admins only; the XGBoost reversal model, or a GRU/LSTM within NET_BOUNDS and
        NET_MAX_DAYS) in a worker process (TensorFlow is imported there only) on the newest stored
        candles; returns the resolved run at once. Progress as a hyperopt's; the final ``result`` is the
        ``TrainSummary``. A new version is activated only if it beats the baselines out of sample and nothing
        is active yet (``bsmart models activate`` otherwise). It counts as the user's one heavy job."""
        owner = f"{actor.source}:{actor.user_id}"

        async def run() -> train_job.TrainJobSpec:
            if actor.role != "admin":
                raise ServiceError("refused", "only an admin may train models", reason="admin_only_train")
            spec = await asyncio.to_thread(self._train_spec, ask)
            try:
                await asyncio.to_thread(self.backtest_jobs.start_train, owner, spec, on_progress)
            except JobRefused as exc:
                raise _job_refused(exc, "heavy jobs") from None
            return spec

        arguments = {"pairs": list(ask.pairs or ()), "days": ask.days, "model": ask.model}
        return await self._audited(actor, "train_start", arguments, run)

    async def cancel_train(self, actor: Actor, job_id: str) -> None:
        """Stop a running training (its owner or an admin); a version it had not saved yet is not kept."""
        await self._cancel_job(actor, job_id, "train", "training", "train_cancel")


def _utc_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y%m%d")


def _job_refused(exc: JobRefused, busy_with: str) -> ServiceError:
    """A heavy job the runner would not start, as the conflict the front ends show (the user's own job, or a full
    machine)."""
    if exc.reason == "owner_busy":
        return ServiceError("conflict", f"your {exc.kind} {exc.running} is still running", reason="job_running",
                            params={"id": str(exc.running)[-12:]}, running=exc.running, kind=exc.kind)
    return ServiceError("conflict", f"the machine is busy with other {busy_with}; try again later",
                        reason="machine_busy", machine_busy=True)


def _known(strategy: Any, timeframe: Any) -> None:
    """Refuse a strategy that is not registered or a timeframe jobs cannot run on."""
    from trader.strategy.reference import STRATEGIES

    if strategy not in STRATEGIES:
        raise ServiceError("invalid_argument", f"unknown strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}",
                           reason="unknown_strategy", params={"name": str(strategy)[:40], "choices": sorted(STRATEGIES)})
    if timeframe not in job_data.TIMEFRAMES:
        raise ServiceError("invalid_argument",
                           f"timeframe {timeframe!r} is not one of {', '.join(job_data.TIMEFRAMES)}",
                           reason="bad_timeframe", params={"timeframe": str(timeframe)[:20],
                                                           "choices": list(job_data.TIMEFRAMES)})


def _canonical(texts: Any, stake: str) -> list[str]:
    """``texts`` as pairs, or the ServiceError naming what was asked."""
    try:
        return job_data.canonical_pairs(texts, stake)
    except ValueError as exc:
        raise ServiceError("invalid_argument", str(exc), reason="bad_pairs",
                           params={"texts": [str(x)[:40] for x in texts]}) from None


def _timerange(text: Any) -> Any:
    """``text`` as a time range, or the ServiceError naming it."""
    try:
        return job_data.resolve_range(text)
    except ValueError as exc:
        raise ServiceError("invalid_argument", str(exc), reason="bad_timerange",
                           params={"text": str(text or "")[:40]}) from None
