"""Scalers fitted on training rows only, stored as JSON with the model.

Missing values are imputed with the training mean before scaling (0 after z-scoring: "no information"), and the
scaled values are clipped so one absurd input cannot dominate a network (the OOD guard sees it first anyway).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Scaler:
    kind: str  # "zscore" | "minmax"
    features: list[str]
    center: np.ndarray  # zscore: mean; minmax: min
    scale: np.ndarray  # zscore: std; minmax: max − min
    fill: np.ndarray  # training mean, imputed for NaN
    clip: float = 10.0

    @classmethod
    def fit(cls, X: np.ndarray, features: list[str], kind: str = "zscore", clip: float | None = None) -> Scaler:
        """``X``: the training rows only (the caller selects them: nothing else may be seen)."""
        X = np.asarray(X, dtype="float64")
        if kind not in ("zscore", "minmax"):
            raise ValueError(f"unknown scaler {kind!r} (zscore or minmax)")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
            fill = np.where(np.isfinite(fill), fill, 0.0)
            if kind == "zscore":
                center, scale = fill, np.nanstd(X, axis=0)
            else:
                center, scale = np.nanmin(X, axis=0), np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
        center = np.where(np.isfinite(center), center, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        return cls(kind, list(features), center, scale, fill, clip if clip is not None else (10.0 if kind == "zscore" else 3.0))

    def transform(self, X: np.ndarray, *, clip: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        X = np.where(np.isnan(X), self.fill, X)
        Z = (X - self.center) / self.scale
        if self.kind == "minmax":
            Z = 2.0 * Z - 1.0  # training range → [−1, 1]
        if clip:
            Z = np.clip(Z, -self.clip, self.clip)
        return Z.astype("float32")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": self.features, "center": self.center.tolist(),
                "scale": self.scale.tolist(), "fill": self.fill.tolist(), "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(d["kind"], list(d["features"]), np.asarray(d["center"]), np.asarray(d["scale"]),
                   np.asarray(d["fill"]), float(d["clip"]))
