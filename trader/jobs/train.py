"""Model training as a heavy job: what the worker process runs and what it sends back (like ``hyperopt``).

The ML stack (features, XGBoost, and TensorFlow for a GRU/LSTM) is imported inside ``run``, so the parent (the
bot's host) imports nothing of it just to queue a job — TensorFlow lives only in the worker process.

Messages: ``("progress", {state, bars_done, bars_total})`` where the "bars" are thousandths of the work (so the
runner's percentage works unchanged); then exactly one of ``("done", {summary: TrainSummary})`` or
``("failed", {error, missing})``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 0.25
STEPS = 1000
KINDS = ("xgb", "gru", "lstm")  # what /train may train
NETS = ("gru", "lstm")
MAX_PAIRS = 3
MAX_DAYS = 30
NET_MAX_DAYS = 14  # the networks train on at most this many days from a phone command (minutes, not hours)
DEFAULT_DAYS = 14
# Bounds for a network trained from /train (bsmart train uses TrainConfig's defaults): few epochs (early stopping
# ends most runs sooner anyway), every 4th window, fewer rows for permutation importance. Measured on this machine
# (2 shared cores, nice 10): a GRU on 7 days of one pair with 2 folds ≈ 20 s; 14 days of 3 pairs ≈ 2–3 min.
NET_BOUNDS: dict[str, Any] = {"epochs": 4, "stride": 4, "permutation_rows": 600}


@dataclass(frozen=True)
class TrainAsk:
    """What a front end asks for; the research service bounds and resolves it."""

    pairs: tuple[str, ...] | None = None  # None: the first whitelisted pairs
    days: int = DEFAULT_DAYS  # the newest N days of stored candles
    model: str = "xgb"


@dataclass(frozen=True)
class TrainJobSpec:
    """A validated, bounded run, picklable (it crosses a spawn boundary)."""

    run_id: str
    pairs: tuple[str, ...]
    start_ms: int
    end_ms: int
    timerange: str
    data_dir: str
    models_dir: str
    names: tuple[str, ...] = KINDS
    folds: int = 2
    activate: str = "if-better"


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    activated: bool
    note: str
    summary: dict[str, Any] = field(default_factory=dict)  # target → out-of-sample figures (training.summary)
    beats_baselines: bool | None = None


@dataclass(frozen=True)
class TrainSummary:
    run_id: str
    pairs: tuple[str, ...]
    timerange: str
    models: tuple[TrainedModel, ...]


def run(spec: TrainJobSpec, conn: Any) -> None:
    """Process entry point (spawn target)."""
    try:
        os.nice(10)  # the live engine and the bot share these cores: they come first
    except (AttributeError, OSError):
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

    def send(kind: str, **fields: Any) -> None:
        conn.send((kind, fields))

    try:
        send("progress", state="loading", bars_done=0, bars_total=0)
        send("done", summary=train(spec, send))
    except Exception as exc:  # the parent reports this text
        send("failed", error=f"{type(exc).__name__}: {exc}", missing=isinstance(exc, FileNotFoundError))
    finally:
        conn.close()


def train(spec: TrainJobSpec, send: Any = None) -> TrainSummary:
    """The job body (also callable in-process)."""
    from trader.ml.registry import ModelRegistry
    from trader.ml.training import TrainConfig, build_dataset, train_models

    last = [0.0]

    def progress(fraction: float, _message: str, force: bool = False) -> None:
        now = time.monotonic()
        if send is not None and (force or now - last[0] >= PROGRESS_EVERY_S):
            last[0] = now
            send("progress", state="running", bars_done=int(min(max(fraction, 0.0), 1.0) * STEPS),
                 bars_total=STEPS)

    progress(0.0, "start", True)
    ds = build_dataset(Path(spec.data_dir), list(spec.pairs), spec.start_ms, spec.end_ms,
                       progress=lambda f, m: progress(0.2 * f, m))
    progress(0.2, "features", True)
    cfg = TrainConfig(folds=spec.folds, **(NET_BOUNDS if set(spec.names) & set(NETS) else {}))
    results = train_models(ds, list(spec.names), cfg, ModelRegistry(spec.models_dir),
                           activate=spec.activate, progress=lambda f, m: progress(0.2 + 0.8 * f, m))
    models = []
    for r in results:
        from trader.ml.training import beats_baselines, summary

        models.append(TrainedModel(r.name, r.version, r.activated, r.note,
                                   summary(r.evaluation) if r.evaluation else {},
                                   beats_baselines(r.evaluation) if r.evaluation else None))
    return TrainSummary(spec.run_id, spec.pairs, spec.timerange, tuple(models))
