"""The engine's and the fusion layer's view of the models.

    predictor = Predictor.load_active(settings.models_dir)    # None: no usable active model → trade without ML
    if predictor:
        p = predictor.predict(feature_rows)                   # or predictor.predict_analysis(analysis)
        p.probabilities["dir_15"]  → (P(down), P(flat), P(up));  p.probabilities["reversal"] → (none, bottom, top)
        p.baseline["dir_15"]       → the training class frequencies (what a model without skill would say)
        p.vote                     → the ensemble's call across horizons (ensemble.Vote)
        p.withheld_reason          → why nothing was predicted (None when something was)

``feature_rows``: the latest rows of ``features.build_features(...).X`` (a DataFrame with FEATURE_NAMES columns,
oldest first; at least ``required_rows``), or an array in FEATURE_NAMES order. Each model reads its own columns,
scales them with its own scaler, checks the dissimilarity guard on the newest row and answers, or is withheld with
a reason (out of distribution, expired, too little history). Importing this module does not import TensorFlow;
loading an active GRU/LSTM does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trader.ml.ensemble import Vote, vote
from trader.ml.features import FEATURE_NAMES
from trader.ml.registry import LoadedModel, ModelError, ModelRegistry
from trader.ml.selection import mask_to_subsets, row_regime

log = logging.getLogger(__name__)
_INDEX = {f: i for i, f in enumerate(FEATURE_NAMES)}


def _correct(p: np.ndarray, prior: Any) -> np.ndarray:
    if prior is None:
        return p
    q = p * np.asarray(prior, dtype="float64")
    return q / max(float(q.sum()), 1e-12)


@dataclass(frozen=True)
class Prediction:
    at_ms: int | None
    probabilities: dict[str, tuple[float, ...]]  # target → class probabilities ("dir_<min>": down/flat/up)
    classes: dict[str, tuple[str, ...]]
    baseline: dict[str, tuple[float, ...]]  # target → training class frequencies
    vote: Vote | None
    withheld: dict[str, str] = field(default_factory=dict)  # model name → reason
    models: dict[str, str] = field(default_factory=dict)  # model name → version that answered
    dissimilarity: dict[str, float] = field(default_factory=dict)
    regime_subset: dict[str, str] = field(default_factory=dict)  # model name → regime whose feature subset it read

    @property
    def withheld_reason(self) -> str | None:
        if self.probabilities:
            return None
        return "; ".join(f"{k}: {v}" for k, v in self.withheld.items()) or "no model answered"

    def horizon(self, minutes: int) -> tuple[float, ...] | None:
        return self.probabilities.get(f"dir_{minutes}")


class Predictor:
    def __init__(self, models: list[LoadedModel], skipped: dict[str, str] | None = None):
        self.models = models
        self.skipped = dict(skipped or {})
        # per-target trading thresholds chosen on each model's validation window at training time
        self.thresholds = {t: float(v) for m in models for t, v in m.meta.get("thresholds", {}).items()}
        self._cols = {m.name: np.array([_INDEX[f] for f in m.features]) for m in models}
        self._fill = {m.name: m.scaler.transform(m.scaler.fill[None, :])[0].astype("float64") for m in models}

    @classmethod
    def load_active(cls, models_dir: Path | str, *, now_ms: int | None = None,
                    features: tuple[str, ...] = FEATURE_NAMES, names: Any = None) -> Predictor | None:
        """The active versions that pass the registry's checks and have not expired; None when there are none
        (each skipped model is logged with its reason and kept in ``skipped`` when others load). ``names``: only
        these model names (default: every active one)."""
        reg = ModelRegistry(models_dir)
        active = {k: v for k, v in reg.active().items() if names is None or k in names}
        if not active:
            return None
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        loaded, skipped = [], {}
        for name, version in sorted(active.items()):
            try:
                meta = reg.meta(name, version)
                if meta.get("expires_ms") is not None and now >= int(meta["expires_ms"]):
                    raise ModelError(f"model {name} {version} expired; retrain it (bsmart train --model "
                                     f"{meta.get('kind')})")
                loaded.append(reg.load(name, version, features=features))
            except ModelError as exc:
                skipped[name] = str(exc)
                log.warning("ML model not used: %s", exc)
        if not loaded:
            return None
        return cls(loaded, skipped)

    @property
    def required_rows(self) -> int:
        return max(int(m.meta.get("seq_len", 1)) for m in self.models)

    @property
    def versions(self) -> dict[str, str]:
        return {m.name: m.version for m in self.models}

    def predict(self, rows: Any, *, at_ms: int | None = None, now_ms: int | None = None) -> Prediction:
        arr = rows[list(FEATURE_NAMES)].to_numpy("float64") if hasattr(rows, "columns") else np.asarray(rows, "float64")
        if arr.ndim == 1:
            arr = arr[None, :]
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        probs: dict[str, tuple[float, ...]] = {}
        classes: dict[str, tuple[str, ...]] = {}
        base: dict[str, tuple[float, ...]] = {}
        withheld = dict(self.skipped)
        used: dict[str, str] = {}
        dis: dict[str, float] = {}
        regimes_used: dict[str, str] = {}
        for m in self.models:
            meta = m.meta
            for t in meta["targets"]:
                base[t] = tuple(meta.get("baseline_prior", {}).get(t, ()))
            if m.expired(now):
                withheld[m.name] = f"model {m.name} {m.version} expired"
                continue
            seq = int(meta.get("seq_len", 1))
            if len(arr) < seq:
                withheld[m.name] = f"needs {seq} rows of history, got {len(arr)}"
                continue
            Z = m.scaler.transform(arr[-seq:, self._cols[m.name]])
            if m.guard is not None:
                di, reason = m.guard.check(Z[-1])
                dis[m.name] = di
                if reason:
                    withheld[m.name] = reason
                    continue
            if meta.get("use_regime_subsets") and meta.get("regime_features"):
                # the model's evaluation showed its regime subsets beat all features out of sample: read only the
                # current regime's (the newest row's) subset, the others at their training mean
                regime = row_regime(arr[-1], FEATURE_NAMES)
                Z = mask_to_subsets(Z, m.features, {regime: meta["regime_features"].get(regime) or []},
                                    np.full(len(Z), regime, dtype=object), self._fill[m.name])
                regimes_used[m.name] = regime
            if meta["kind"] == "xgb":
                out = {meta["targets"][0]: m.model.predict_proba(Z[-1:])[0]}
            else:
                out = m.model.predict_window(Z)
            priors = meta.get("priors", {})
            for t, p in out.items():
                probs[t] = tuple(float(x) for x in _correct(np.asarray(p, dtype="float64"), priors.get(t)))
                classes[t] = tuple(meta["classes"])
            used[m.name] = m.version
        horizons = {int(t.split("_")[1]): np.asarray(p) for t, p in probs.items() if t.startswith("dir_")}
        rev = np.asarray(probs["reversal"]) if "reversal" in probs else None
        v = (vote(horizons, {h: self.thresholds.get(f"dir_{h}", 0.5) for h in horizons}, reversal=rev,
                  reversal_threshold=self.thresholds.get("reversal", 0.5)) if horizons else None)
        return Prediction(at_ms, probs, classes, base, v, withheld, used, dis, regimes_used)

    def predict_analysis(self, analysis: Any, filled_ts_ms: Any = None) -> Prediction:
        """Features from a ``MarketAnalysis`` (its latest grid rows), then ``predict``."""
        from trader.ml.features import build_features

        fs = build_features(analysis, filled_ts_ms)
        if not len(fs):
            return Prediction(None, {}, {}, {}, None, {"all": "no closed grid bar yet"})
        n = self.required_rows
        return self.predict(fs.X.iloc[-n:], at_ms=int(fs.close_ms[-1]))


def status(models_dir: Path | str, now_ms: int | None = None) -> list[dict[str, Any]]:
    """Per active model: usable or the reason it is not (no model is loaded; for /models and `bsmart models`)."""
    reg = ModelRegistry(models_dir)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out = []
    for name, version in sorted(reg.active().items()):
        try:
            meta = reg.verify(name, version)
            if meta.get("expires_ms") is not None and now >= int(meta["expires_ms"]):
                out.append({"name": name, "version": version, "usable": False, "reason": "expired"})
            else:
                out.append({"name": name, "version": version, "usable": True, "reason": ""})
        except ModelError as exc:
            out.append({"name": name, "version": version, "usable": False, "reason": str(exc)})
    return out
