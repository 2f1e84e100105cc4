"""Online retraining: light models incrementally every hour, a full retrain weekly, in a worker process at lower
priority so the engine and the bot never wait.

    sched = RetrainScheduler(models_dir, data_dir, pairs, RetrainPolicy())
    sched.tick()            # from any periodic callback: starts a job when one is due; never blocks
    sched.poll()            # the finished job's outcome (or None)

A job (``run_retrain``) builds a candidate per model name and compares it with the active version on the same
out-of-sample holdout (the last ``holdout_hours`` of data, which the candidate never trained on, purged by the
label horizon): the candidate goes live only if its log loss there is lower by at least ``min_improvement`` (or
nothing is active yet and it beats the baselines). Light: the active model continued on recent data (XGBoost adds
boosting rounds, the networks a few epochs), same features and scaler. Full: trained from scratch with the
walk-forward evaluation. Every decision is written into the candidate's meta (``promotion``).

Process pattern as trader/jobs: a "spawn" child (never fork), ``os.nice``, results over a pipe.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trader.ml import metrics as M
from trader.ml.features import FEATURE_NAMES
from trader.ml.registry import LoadedModel, ModelError, ModelRegistry
from trader.ml.training import (
    MODEL_SPECS,
    Dataset,
    TrainConfig,
    beats_baselines,
    build_dataset,
    candidate_rows,
    evaluate,
    final_fit,
    horizon_ms,
    model_meta,
    prior_correct,
)

log = logging.getLogger(__name__)
STATE_FILE = "retrain_state.json"


@dataclass(frozen=True)
class RetrainPolicy:
    light_every_s: int = 3600
    full_every_s: int = 7 * 86400
    light_window_days: float = 7.0
    full_window_days: float = 120.0
    holdout_hours: float = 24.0
    light_epochs: int = 2
    light_rounds: int = 40
    min_improvement: float = 0.0
    light_expiry_days: float = 2.0
    nice: int = 10
    names: tuple[str, ...] = ("gru", "lstm", "xgb")


@dataclass(frozen=True)
class RetrainJobSpec:
    mode: str  # light | full
    models_dir: str
    data_dir: str
    pairs: tuple[str, ...]
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    cfg: TrainConfig = field(default_factory=TrainConfig)
    end_ms: int | None = None  # None: all data


def score_loaded(lm: LoadedModel, ds: Dataset, rows: np.ndarray) -> float:
    """Mean log loss over the model's targets on ``rows`` (known labels only)."""
    cols = [FEATURE_NAMES.index(f) for f in lm.features]
    Z = lm.scaler.transform(ds.X[:, cols])
    seq = int(lm.meta.get("seq_len", 1))
    rows = rows[ds.pos[rows] >= seq - 1]
    if lm.meta["kind"] == "xgb":
        raw = {lm.meta["targets"][0]: lm.model.predict_proba(Z[rows])}
    else:
        raw = lm.model.predict_proba(Z, rows)
    losses = []
    for t, p in raw.items():
        p = prior_correct(p, lm.meta.get("priors", {}).get(t, [1 / 3] * 3))
        y = ds.labels[t][rows]
        k = y >= 0
        if k.any():
            losses.append(M.log_loss(y[k], p[k]))
    return float(np.mean(losses)) if losses else float("nan")


def _light_candidate(name: str, active: LoadedModel, train: Dataset, spec_cfg: TrainConfig,
                     policy: RetrainPolicy) -> tuple[Any, Any, Any, dict[str, Any]]:
    spec = MODEL_SPECS[active.meta["kind"]]
    init = active.model
    fitted, guard, info = final_fit(spec, train, spec_cfg, init=init, scaler=active.scaler,
                                    features=active.features, epochs=policy.light_epochs,
                                    rounds=policy.light_rounds)
    return spec, fitted, guard, info


def run_retrain(job: RetrainJobSpec, send: Any = None) -> list[dict[str, Any]]:
    """The job body (also callable in-process, as the tests do)."""
    def emit(kind: str, **f: Any) -> None:
        if send:
            send(kind, **f)

    reg = ModelRegistry(job.models_dir)
    pol, cfg = job.policy, job.cfg
    end = job.end_ms
    days = pol.light_window_days if job.mode == "light" else pol.full_window_days
    start = None if end is None else end - int(days * 86_400_000)
    emit("progress", stage="data")
    ds = build_dataset(Path(job.data_dir), list(job.pairs), start, end, cfg.labels)
    hold_start = int(ds.close_ms.max()) - int(pol.holdout_hours * 3_600_000)
    out = []
    for name in pol.names:
        spec_key = name if name in MODEL_SPECS else None
        active_v = reg.active().get(name)
        active = None
        if active_v:
            try:
                active = reg.load(name, active_v)
            except ModelError as exc:
                log.warning("active %s %s unusable, retraining from scratch: %s", name, active_v, exc)
        if spec_key is None and active is None:
            continue
        spec = MODEL_SPECS[active.meta["kind"] if active else spec_key]
        purge = horizon_ms(spec, cfg.labels) + cfg.embargo_min * 60_000
        train = ds.subset(ds.close_ms + purge < hold_start)
        rows_hold = candidate_rows(ds, spec, cfg)
        rows_hold = rows_hold[ds.close_ms[rows_hold] >= hold_start]
        emit("progress", stage=f"{job.mode} {name}")
        try:
            if job.mode == "light" and active is not None:
                spec, fitted, guard, info = _light_candidate(name, active, train, cfg, pol)
                evaluation = active.meta.get("metrics")
                extra = {"parent": active.version, "retrain": "light"}
                c = replace(cfg, expiry_days=pol.light_expiry_days)
            else:
                evaluation = evaluate(spec, train, cfg)
                fitted, guard, info = final_fit(spec, train, cfg)
                extra = {"retrain": "full"}
                c = cfg
            meta = model_meta(spec, fitted, info, evaluation, train, c, extra)
            version = reg.save(name, fitted.model, fitted.scaler, guard, meta)
            cand = reg.load(name, version)
            cand_ll = score_loaded(cand, ds, rows_hold)
            act_ll = score_loaded(active, ds, rows_hold) if active is not None else None
            if active is None:
                promote = bool(beats_baselines(evaluation)) if evaluation else False
                why = "no active version; " + ("beats the baselines" if promote else "does not beat the baselines")
            else:
                promote = bool(np.isfinite(cand_ll) and cand_ll < act_ll - pol.min_improvement)
                why = (f"holdout log loss {cand_ll:.4f} vs active {active.version} {act_ll:.4f}: "
                       + ("better" if promote else "not better"))
            decision = {"holdout_start_ms": hold_start, "holdout_rows": int(len(rows_hold)),
                        "candidate_log_loss": cand_ll, "active_version": active.version if active else None,
                        "active_log_loss": act_ll, "promoted": promote, "reason": why}
            reg.update_meta(name, version, promotion=decision)
            if promote:
                reg.activate(name, version)
            out.append({"name": name, "version": version, **decision})
            emit("model", name=name, version=version, promoted=promote, reason=why)
        except Exception as exc:  # one model failing must not stop the others
            log.exception("retrain of %s failed", name)
            out.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
    return out


def worker(job: RetrainJobSpec, conn: Any) -> None:
    """Process entry point (spawn target): lower priority, one TF thread, results over the pipe."""
    try:
        os.nice(job.policy.nice)
    except (AttributeError, OSError):
        pass
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def send(kind: str, **f: Any) -> None:
        conn.send((kind, f))

    try:
        send("done", results=run_retrain(job, send))
    except Exception as exc:
        send("failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


class RetrainScheduler:
    """Decides when a light or full retrain is due and runs it in a child process. ``tick`` and ``poll`` return at
    once; state (last light/full run) lives in ``<models_dir>/retrain_state.json`` so a restart keeps the rhythm."""

    def __init__(self, models_dir: Path | str, data_dir: Path | str, pairs: tuple[str, ...],
                 policy: RetrainPolicy | None = None, cfg: TrainConfig | None = None, clock: Any = time.time):
        self.models_dir, self.data_dir = Path(models_dir), Path(data_dir)
        self.pairs, self.policy, self.cfg, self.clock = tuple(pairs), policy or RetrainPolicy(), cfg or TrainConfig(), clock
        self._proc: Any = None
        self._conn: Any = None
        self._mode: str | None = None
        self.last_result: dict[str, Any] | None = None

    def _state(self) -> dict[str, float]:
        p = self.models_dir / STATE_FILE
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    def _save_state(self, **kw: float) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        (self.models_dir / STATE_FILE).write_text(json.dumps({**self._state(), **kw}), encoding="utf-8")

    def due(self, now: float | None = None) -> str | None:
        now = self.clock() if now is None else now
        st = self._state()
        if now - st.get("last_full", 0.0) >= self.policy.full_every_s:
            return "full"
        if now - st.get("last_light", 0.0) >= self.policy.light_every_s:
            return "light"
        return None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def tick(self, now: float | None = None) -> str | None:
        """Start a due job unless one runs; returns the mode started."""
        self.poll()
        if self._proc is not None:
            return None
        mode = self.due(now)
        if mode is None:
            return None
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        job = RetrainJobSpec(mode, str(self.models_dir), str(self.data_dir), self.pairs, self.policy, self.cfg)
        self._proc = ctx.Process(target=worker, args=(job, child), name=f"ml-retrain-{mode}", daemon=True)
        self._proc.start()
        child.close()
        self._conn, self._mode = parent, mode
        t = self.clock() if now is None else now
        self._save_state(**({"last_full": t, "last_light": t} if mode == "full" else {"last_light": t}))
        return mode

    def poll(self) -> dict[str, Any] | None:
        if self._proc is None:
            return None
        final = None
        try:
            while self._conn.poll():
                kind, fields = self._conn.recv()
                if kind in ("done", "failed"):
                    final = {"kind": kind, "mode": self._mode, **fields}
        except (EOFError, OSError):
            if final is None and not self._proc.is_alive():
                final = {"kind": "failed", "mode": self._mode, "error": "worker exited without a result"}
        if final is None and not self._proc.is_alive():
            final = {"kind": "failed", "mode": self._mode, "error": f"worker exit code {self._proc.exitcode}"}
        if final is not None:
            self._proc.join(timeout=1)
            self._proc, self._conn, self._mode = None, None, None
            self.last_result = final
        return final

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._proc = self._conn = self._mode = None
