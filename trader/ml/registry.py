"""The model registry: ``<models_dir>/<name>/<version>/`` holds one trained model and everything needed to trust it.

    model.keras | model.ubj   the model
    features.json             the feature list, in the order the model reads it, and the feature schema
    scaler.json               the scaler fitted on the training window
    ood.npz                   the dissimilarity guard's reference sample and threshold
    meta.json                 kind, heads, training range and pairs, out-of-sample metrics, library versions,
                              created/expiry times, regime feature subsets, the files' SHA-256 and one hash of them

``<models_dir>/active.json`` maps a name to its active version (several names can be active: a GRU, an LSTM and
an XGBoost reversal model together). Loading refuses, with a message saying what to do, a model whose files changed
since it was saved, whose feature schema or features the code no longer builds, or that was saved with other
major.minor versions of the libraries it needs. This module does not import TensorFlow; loading a neural model does.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trader.ml.features import FEATURE_NAMES, FEATURE_SCHEMA
from trader.ml.scaling import Scaler

ACTIVE_FILE = "active.json"
META_FILE = "meta.json"
NEURAL_KINDS = ("gru", "lstm")
_DISTS = {"xgboost": ("xgboost", "xgboost-cpu"), "tensorflow": ("tensorflow", "tensorflow-cpu"),
          "keras": ("keras",), "numpy": ("numpy",)}


class ModelError(Exception):
    """A model that cannot be used; the message says why and what to do."""


class ModelMismatch(ModelError):
    pass


def installed_version(lib: str) -> str | None:
    for dist in _DISTS.get(lib, (lib,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def libraries_for(kind: str) -> dict[str, str | None]:
    libs = ["numpy", "tensorflow", "keras"] if kind in NEURAL_KINDS else ["numpy", "xgboost"]
    return {lib: installed_version(lib) for lib in libs}


def _minor(v: str | None) -> str | None:
    return None if v is None else ".".join(v.split(".")[:2])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedModel:
    meta: dict[str, Any]
    model: Any  # XGBModel | NetModel
    scaler: Scaler
    guard: Any  # DissimilarityGuard | None

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def features(self) -> list[str]:
        return list(self.scaler.features)

    def expired(self, now_ms: int | None = None) -> bool:
        exp = self.meta.get("expires_ms")
        return exp is not None and (now_ms if now_ms is not None else int(time.time() * 1000)) >= int(exp)


class ModelRegistry:
    def __init__(self, models_dir: Path | str):
        self.root = Path(models_dir)

    # ----------------------------------------------------------------------------------------------- writing
    def _next_version(self, name: str) -> str:
        d = self.root / name
        nums = [int(p.name[1:]) for p in d.glob("v[0-9]*") if p.is_dir() and p.name[1:].isdigit()] if d.exists() else []
        return f"v{(max(nums) + 1 if nums else 1):04d}"

    def save(self, name: str, model: Any, scaler: Scaler, guard: Any, meta: dict[str, Any]) -> str:
        """Write a new version (never overwrites one); returns it. ``meta`` gets versions, hashes and times."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad model name {name!r}")
        (self.root / name).mkdir(parents=True, exist_ok=True)
        while True:
            version = self._next_version(name)
            tmp = self.root / name / f".{version}.tmp{os.getpid()}"
            try:
                (self.root / name / version).mkdir()
                break
            except FileExistsError:
                continue
        final = self.root / name / version
        try:
            tmp.mkdir()
            files = list(model.save(tmp))
            (tmp / "features.json").write_text(json.dumps({"schema": FEATURE_SCHEMA, "features": scaler.features}),
                                               encoding="utf-8")
            (tmp / "scaler.json").write_text(json.dumps(scaler.to_dict()), encoding="utf-8")
            files += ["features.json", "scaler.json"]
            if guard is not None:
                files.append(guard.save(tmp))
            hashes = {f: sha256_file(tmp / f) for f in sorted(files) if (tmp / f).is_file()}
            for f in files:  # a keras file is a zip; a directory model would be hashed per file
                if (tmp / f).is_dir():
                    raise ModelError(f"{f} is a directory; save single files")
            now = int(time.time() * 1000)
            full = {**meta, "name": name, "version": version, "kind": meta["kind"], "feature_schema": FEATURE_SCHEMA,
                    "n_features": len(scaler.features), "created_ms": meta.get("created_ms", now),
                    "libraries": {**libraries_for(meta["kind"]), "python": platform.python_version()},
                    "files": hashes, "hash": hashlib.sha256("".join(f"{k}:{v};" for k, v in hashes.items())
                                                           .encode()).hexdigest()}
            (tmp / META_FILE).write_text(json.dumps(full, indent=1, default=_json_default), encoding="utf-8")
            final.rmdir()
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists() and not any(final.iterdir()):
                final.rmdir()
            raise
        return version

    def update_meta(self, name: str, version: str, **fields: Any) -> None:
        """Fields outside the hash (promotion decisions, notes) may be added later."""
        path = self.root / name / version / META_FILE
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta.update(fields)
        path.write_text(json.dumps(meta, indent=1, default=_json_default), encoding="utf-8")

    # ------------------------------------------------------------------------------------------- reading
    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[str]:
        d = self.root / name
        if not d.exists():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / META_FILE).exists())

    def meta(self, name: str, version: str) -> dict[str, Any]:
        path = self.root / name / version / META_FILE
        if not path.exists():
            raise ModelError(f"no model {name} {version} in {self.root}")
        return json.loads(path.read_text(encoding="utf-8"))

    def active(self) -> dict[str, str]:
        path = self.root / ACTIVE_FILE
        if not path.exists():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_active(self, active: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{ACTIVE_FILE}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(active, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.root / ACTIVE_FILE)

    def activate(self, name: str, version: str, *, features: tuple[str, ...] = FEATURE_NAMES) -> None:
        """Make ``version`` the active one of ``name`` after checking it would load (integrity, features and
        library versions; ModelError otherwise). The model itself is not loaded (no TensorFlow import here)."""
        self.verify(name, version, features=features)
        self._write_active({**self.active(), name: version})

    def deactivate(self, name: str) -> bool:
        active = self.active()
        if name not in active:
            return False
        del active[name]
        self._write_active(active)
        return True

    def verify(self, name: str, version: str, *, features: tuple[str, ...] = FEATURE_NAMES,
               check_libraries: bool = True) -> dict[str, Any]:
        """The checks ``load`` makes, without loading the model. Returns the meta."""
        meta = self.meta(name, version)
        d = self.root / name / version
        label = f"model {name} {version}"
        for f, h in meta.get("files", {}).items():
            if not (d / f).exists():
                raise ModelError(f"{label}: file {f} is missing; the version is incomplete, retrain or delete it")
            if sha256_file(d / f) != h:
                raise ModelError(f"{label}: {f} changed since it was saved (hash mismatch); refusing to load it")
        saved = json.loads((d / "features.json").read_text(encoding="utf-8"))
        if saved.get("schema") != FEATURE_SCHEMA:
            raise ModelMismatch(f"{label} was trained on feature schema {saved.get('schema')!r}, this code builds "
                                f"{FEATURE_SCHEMA!r}: retrain it (bsmart train --model {meta['kind']})")
        missing = [f for f in saved["features"] if f not in set(features)]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ModelMismatch(f"{label} needs features the feature builder does not provide: "
                                f"{', '.join(missing[:5])}{more}; retrain it (bsmart train --model {meta['kind']})")
        if check_libraries:
            for lib, saved_v in meta.get("libraries", {}).items():
                if lib == "python":
                    continue
                now_v = installed_version(lib)
                if _minor(now_v) != _minor(saved_v):
                    raise ModelMismatch(f"{label} was saved with {lib} {saved_v} but {lib} {now_v or 'is not'} "
                                        f"installed: install {lib}=={_minor(saved_v)}.* or retrain it "
                                        f"(bsmart train --model {meta['kind']})")
        return meta

    def load(self, name: str, version: str | None = None, *, features: tuple[str, ...] = FEATURE_NAMES) -> LoadedModel:
        if version is None:
            version = self.active().get(name)
            if version is None:
                raise ModelError(f"no active version of {name}")
        meta = self.verify(name, version, features=features)
        d = self.root / name / version
        scaler = Scaler.from_dict(json.loads((d / "scaler.json").read_text(encoding="utf-8")))
        guard = None
        if (d / "ood.npz").exists():
            from trader.ml.ood import DissimilarityGuard

            guard = DissimilarityGuard.load(d)
        if meta["kind"] in NEURAL_KINDS:
            from trader.ml.nets import NetModel  # imports TensorFlow: only here

            model: Any = NetModel.load(d, meta)
        else:
            from trader.ml.xgb_model import XGBModel

            model = XGBModel.load(d, meta)
        return LoadedModel(meta, model, scaler, guard)

    def rows(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """One row per version for listings (`bsmart models`, later /models)."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        active = self.active()
        out = []
        for name in self.names():
            for v in self.versions(name):
                m = self.meta(name, v)
                out.append({"name": name, "version": v, "kind": m.get("kind"), "task": m.get("task"),
                            "created_ms": m.get("created_ms"), "expires_ms": m.get("expires_ms"),
                            "expired": m.get("expires_ms") is not None and now >= int(m["expires_ms"]),
                            "active": active.get(name) == v, "training": m.get("training", {}),
                            "summary": m.get("summary", {}), "promotion": m.get("promotion"),
                            "seed_target": (m.get("metrics") or {}).get("seed_target"),
                            "regime_subsets": (m.get("metrics") or {}).get("regime_subsets")})
        return out


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
