"""A bounded hyperopt as a heavy job: what the worker process runs, what it sends back, and the check that
parameters about to be applied to the live strategy are ones the strategy declares.

Like ``worker``, this is what a spawned child imports: the optimiser is imported inside ``run`` so the parent
(the bot's host) does not load optuna just to queue a job.

Messages: ``("progress", {state, bars_done, bars_total, fold, folds, best_score})`` where the "bars" are trials
(done over folds × epochs, so the runner's percentage works unchanged); then exactly one of
``("done", {summary: HyperoptSummary})`` or ``("failed", {error, missing})``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class HyperoptJobSpec:
    """A validated, bounded run, picklable (it crosses a spawn boundary)."""

    run_id: str
    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    start_ms: int
    end_ms: int
    timerange: str
    leverage: int
    initial_wallet: float
    data_dir: str
    results_dir: str
    spaces: tuple[str, ...]
    epochs: int
    folds: int
    sampler: str = "tpe"
    loss: str = "sharpe"
    seed: int = 42


@dataclass(frozen=True)
class HyperoptSummary:
    """What a finished run reports: enough to show and to apply, without the whole optuna study."""

    run_id: str
    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    timerange: str
    loss: str
    best_params: dict[str, Any]  # strategy_params overrides (tuples kept) from the newest fold
    oos_score: float | None
    is_score: float | None
    oos_total_return: float | None
    oos_worst_drawdown: float | None
    folds: int
    trials: int
    table: str
    export: str  # the JSON written under results_dir ("" if none)
    engine: str = "backtrader"  # what ran the trials: "screening" or "backtrader"
    # Screening only: did Backtrader, re-running each fold's best parameters, give the same trades and score?
    engine_agreed: bool | None = None


def _agreed(result: Any) -> bool | None:
    checks = [f.recheck for f in result.folds if f.recheck is not None]
    if result.engine != "screening" or not checks:
        return None
    return all(c.get("trades_equal") and c.get("scores_equal") for c in checks)


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def run(spec: HyperoptJobSpec, conn: Any) -> None:
    """Process entry point (spawn target)."""
    try:
        os.nice(10)  # the live engine and the bot share these cores: they come first
    except (AttributeError, OSError):
        pass

    def send(kind: str, **fields: Any) -> None:
        conn.send((kind, fields))

    try:
        send("progress", state="loading", bars_done=0, bars_total=0, fold=0, folds=spec.folds, best_score=None)
        from trader.optimize import HyperoptProgress, HyperoptRequest, plan_hyperopt, run_hyperopt

        request = HyperoptRequest(
            strategy=spec.strategy, pairs=spec.pairs, timeframe=spec.timeframe, start_ms=spec.start_ms,
            end_ms=spec.end_ms, leverage=spec.leverage, initial_wallet=spec.initial_wallet,
            data_dir=Path(spec.data_dir), spaces=spec.spaces, epochs=spec.epochs, sampler=spec.sampler,
            loss=spec.loss, folds=spec.folds, jobs=1, storage=None, study_name=f"telegram-{spec.run_id}",
            seed=spec.seed)
        plan = plan_hyperopt(request)
        folds = len(plan.folds)
        total = folds * spec.epochs
        last = [0.0]

        def progress(p: HyperoptProgress) -> None:
            # After every trial: far more often than anyone can read, so at most every PROGRESS_EVERY_S.
            now = time.monotonic()
            if p.stage == "optimising" and now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            done = total if p.stage == "done" else p.fold * spec.epochs + min(p.trials_done, spec.epochs)
            send("progress", state="running", bars_done=done, bars_total=total, fold=p.fold, folds=folds,
                 best_score=p.best_score)

        send("progress", state="running", bars_done=0, bars_total=total, fold=0, folds=folds, best_score=None)
        result = run_hyperopt(request, progress=progress, plan=plan)
        export = ""
        try:
            export = str(result.write_json(Path(spec.results_dir)).resolve())
        except OSError:
            pass  # the result still reaches the user; only the file record is lost
        summary = HyperoptSummary(
            run_id=spec.run_id, strategy=result.strategy, pairs=spec.pairs, timeframe=spec.timeframe,
            timerange=spec.timerange, loss=result.loss, best_params=result.best_params,
            oos_score=_num(result.oos_score), is_score=_num(result.is_score),
            oos_total_return=_num(result.oos_total_return), oos_worst_drawdown=_num(result.oos_worst_drawdown),
            folds=len(result.folds), trials=sum(f.new_trials for f in result.folds), table=result.table(),
            export=export, engine=result.engine, engine_agreed=_agreed(result))
        send("done", summary=summary)
    except Exception as exc:  # the parent reports this text
        send("failed", error=f"{type(exc).__name__}: {exc}", missing=isinstance(exc, FileNotFoundError))
    finally:
        conn.close()


def checked_params(strategy: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the strategy's own types, or ValueError naming what is wrong.

    Only parameters the strategy declares; a tuple parameter needs as many numbers as its default (JSON turns
    tuples into lists, so lists are accepted and turned back); bool stays bool and numbers stay numbers, so a
    stored value can never change a parameter's kind under the live strategy.
    """
    declared = strategy.param_values()
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"{strategy.__name__} has no parameters {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        default = declared[name]
        out[name] = _as_kind(name, default, value)
    return out


def _as_kind(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ValueError(f"{name} needs {len(default)} values, got {value!r}")
        return tuple(_as_kind(f"{name}[{i}]", d, v) for i, (d, v) in enumerate(zip(default, value, strict=True)))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if isinstance(default, int):
            if float(value) != int(value):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            return int(value)
        return float(value)
    if not isinstance(value, type(default)):
        raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")
    return value


# -- what may be asked from a phone ------------------------------------------------------------------------------------
# A run from Telegram shares two cores with the live engine and the bot: it is bounded, single-process and in
# memory. Minutes, not hours; the CLI is there for the big studies.
MAX_EPOCHS = 100
MAX_FOLDS = 3
MAX_PAIRS = 3
DEFAULT_EPOCHS = 30
DEFAULT_FOLDS = 2
DEFAULT_DAYS = 14  # of the newest stored data, when no range is given
DEFAULT_TIMEFRAME = "15m"
DEFAULT_SPACES = ("buy", "sell")
LOSSES = ("sharpe", "sortino", "calmar", "profit_drawdown")


@dataclass(frozen=True)
class HyperoptAsk:
    """A hyperopt as a person asks for it; None means the default (the configured strategy, the first
    whitelisted pairs, the newest ``DEFAULT_DAYS`` of stored data)."""

    strategy: str | None = None
    pairs: tuple[str, ...] | None = None
    timeframe: str = DEFAULT_TIMEFRAME
    timerange: str | None = None
    epochs: int = DEFAULT_EPOCHS
    folds: int = DEFAULT_FOLDS
    spaces: tuple[str, ...] = DEFAULT_SPACES
    loss: str = "sharpe"
