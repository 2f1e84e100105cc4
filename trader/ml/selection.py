"""Adaptive feature selection.

At every (re)train the model's importance is measured on its validation window: gain (XGBoost) and permutation
importance (increase of log loss when one feature is shuffled; model-agnostic, also for the networks). Both are
appended to ``<models>/<name>/importance.json`` so they can be followed across retrains. Per market regime the
permutation importance is measured again on that regime's validation rows and the features that helped (positive
importance, best first, at most ``max_k``) are stored with the model as its regime subset.

Prediction may use the subset of the current regime (``mask_to_subsets``): the features outside it are set to
their training mean — the value the scaler imputes for "no information" — so the model, trained on every feature,
reads only that regime's useful ones. Whether that helps is measured, not assumed: the walk-forward evaluation
picks the subsets on each fold's validation rows and scores the test rows both ways (``regime_subsets`` in the
evaluation); the model is stored with ``use_regime_subsets`` true only when the subsets gave the lower
out-of-sample log loss, and the predictor masks only then.

The next retrain reads the history: a feature that did not help (permutation importance ≤ 0) in each of the last
``patience`` retrains is left out of it (``adaptive_drop``). Gain alone is not trusted for that: it rewards features
a tree split on in-sample, useful or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trader.ml.metrics import log_loss

HISTORY_FILE = "importance.json"


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], Z: np.ndarray, y: np.ndarray,
                           features: list[str], *, max_rows: int = 3000, seed: int = 0,
                           columns: np.ndarray | None = None) -> dict[str, float]:
    """``predict(Z_rows) → proba``; ``Z`` scaled rows (or whatever ``predict`` takes, feature axis last)."""
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(y >= 0)
    if len(keep) > max_rows:
        keep = np.sort(rng.choice(keep, max_rows, replace=False))
    if not len(keep):
        return {f: 0.0 for f in features}
    Zs, ys = Z[keep], y[keep]
    base = log_loss(ys, predict(Zs))
    out = {}
    cols = range(len(features)) if columns is None else columns
    for j in cols:
        Zp = Zs.copy()
        perm = rng.permutation(len(Zp))
        Zp[..., j] = Zs[perm][..., j]
        out[features[j]] = float(log_loss(ys, predict(Zp)) - base)
    return out


def regime_subsets(predict: Callable[[np.ndarray], np.ndarray], Z: np.ndarray, y: np.ndarray,
                   regimes: np.ndarray, features: list[str], *, min_rows: int = 200, max_k: int = 25,
                   max_rows: int = 1500, seed: int = 0) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in sorted(set(regimes.tolist()) - {"unknown"}):
        m = (regimes == r) & (y >= 0)
        if m.sum() < min_rows:
            continue
        imp = permutation_importance(predict, Z[m], y[m], features, max_rows=max_rows, seed=seed)
        good = sorted((f for f in features if imp[f] > 0), key=lambda f: -imp[f])[:max_k]
        out[r] = good
    return out


def mask_to_subsets(inputs: np.ndarray, features: list[str], subsets: dict[str, list[str]], regimes: np.ndarray,
                    fill_z: np.ndarray) -> np.ndarray:
    """``inputs`` (rows × features, or windows × steps × features, already scaled) with, for each row whose regime
    has a stored subset, every feature outside that subset set to ``fill_z`` (the scaled training mean). Rows of a
    regime without a subset (too few validation rows, or unknown) are left as they are."""
    out = np.array(inputs, copy=True)
    index = {f: j for j, f in enumerate(features)}
    for r, keep in subsets.items():
        rows = np.flatnonzero(regimes == r)
        if not len(rows) or not keep:
            continue
        kept = {index[f] for f in keep if f in index}
        drop = np.array([j for j in range(len(features)) if j not in kept], dtype="int64")
        if not len(drop):
            continue
        part = out[rows]
        part[..., drop] = fill_z[drop]
        out[rows] = part
    return out


def row_regime(row: np.ndarray, features: list[str] | tuple[str, ...]) -> str:
    """The regime a feature row is in, from its one-hot ``regime_<name>`` columns ("unknown" when none is set)."""
    for j, f in enumerate(features):
        if f.startswith("regime_") and row[j] == 1.0:
            return f.removeprefix("regime_")
    return "unknown"


def record(models_dir: Path, name: str, version: str, gain: dict[str, float] | None,
           permutation: dict[str, float]) -> None:
    path = Path(models_dir) / name / HISTORY_FILE
    history = load_history(models_dir, name)
    history.append({"version": version, "gain": gain or {}, "permutation": permutation})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(history, indent=1), encoding="utf-8")


def load_history(models_dir: Path, name: str) -> list[dict[str, Any]]:
    path = Path(models_dir) / name / HISTORY_FILE
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def adaptive_drop(history: list[dict[str, Any]], patience: int = 3) -> set[str]:
    """Features with permutation importance ≤ 0 in each of the last ``patience`` retrains (never before that many
    retrains exist)."""
    if len(history) < patience:
        return set()
    last = history[-patience:]
    common = set.intersection(*(set(h["permutation"]) for h in last))
    return {f for f in common if all(h["permutation"][f] <= 0 for h in last)}
