"""The models seen from the running system: what is active (for /status and /models), a prediction for a pair
now (for /predict) and the adapter that lets the strategies consult the predictor (``fusion.MLProvider``).

    ml_state(models_dir)                          # MLState: active models, their age, usable or why not
    rows = StoreRows(data_dir)                    # feature rows built from the candle store, cached per bar
    provider = PredictorProvider(predictor, rows) # fusion.set_ml_provider(provider): fusion and grade 3 use it

Where the rows come from: the predictor needs the feature matrix of ``features.build_features`` — the analyzer run
over 1m/5m candles (and funding) with weeks of warm-up for the 4h indicators — not the indicator lines a strategy
holds for its current bar. The live engine keeps its candles in its Backtrader feeds and does not write them to the
store, so ``StoreRows`` reads the candle store (``bsmart download`` fills it). When the newest stored bar is not the
bar being decided, the provider abstains (returns None) rather than predict from stale data; the reason is kept in
``PredictorProvider.last_reason`` and logged once per pair.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader.ml.registry import ModelError, ModelRegistry

log = logging.getLogger(__name__)
GRID_MS = 300_000
LOOKBACK_DAYS = 21.0  # candles read for one prediction: the 4h indicators' warm-up plus the longest sequence


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: str
    kind: str | None
    created_ms: int | None
    expires_ms: int | None
    usable: bool
    reason: str = ""  # why it is not usable
    summary: dict[str, Any] = field(default_factory=dict)  # target → out-of-sample figures

    def age_s(self, now_ms: int) -> float | None:
        return None if self.created_ms is None else max(0.0, (now_ms - int(self.created_ms)) / 1000)


@dataclass(frozen=True)
class MLState:
    active: tuple[ActiveModel, ...]
    versions: int = 0  # versions stored in the registry

    @property
    def on(self) -> bool:
        return any(m.usable for m in self.active)

    @property
    def usable(self) -> tuple[ActiveModel, ...]:
        return tuple(m for m in self.active if m.usable)


def ml_state(models_dir: Path | str, now_ms: int | None = None) -> MLState:
    """The registry's active versions with their checks (integrity, features, libraries, expiry), without
    loading any model (no XGBoost or TensorFlow import)."""
    reg = ModelRegistry(models_dir)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out = []
    try:
        active = reg.active()
        count = sum(len(reg.versions(n)) for n in reg.names())
    except (OSError, ValueError) as exc:
        log.warning("model registry unreadable: %s", exc)
        return MLState(())
    for name, version in sorted(active.items()):
        meta: dict[str, Any] = {}
        try:
            meta = reg.meta(name, version)
            reg.verify(name, version)
            expired = meta.get("expires_ms") is not None and now >= int(meta["expires_ms"])
            usable, reason = not expired, "expired" if expired else ""
        except (ModelError, OSError, ValueError) as exc:
            usable, reason = False, str(exc)
        out.append(ActiveModel(name, version, meta.get("kind"), meta.get("created_ms"), meta.get("expires_ms"),
                               usable, reason, dict(meta.get("summary") or {})))
    return MLState(tuple(out), count)


# -- feature rows ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rows:
    X: Any  # DataFrame of FEATURE_NAMES columns, oldest first
    close_ms: Any  # numpy int64, the close of each row's 5m bar


class StoreRows:
    """Feature rows for a pair up to a time, built from the candle store; the last few answers are cached (one
    decision bar asks once per pair however many strategies and setups consult the model)."""

    def __init__(self, data_dir: Path | str, lookback_days: float = LOOKBACK_DAYS, cache: int = 16):
        self.data_dir = Path(data_dir)
        self.lookback_ms = int(lookback_days * 86_400_000)
        self._cache: OrderedDict[tuple[str, int], Rows | None] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()

    def __call__(self, pair: str, at_ms: int) -> Rows | None:
        key = (pair, int(at_ms) - int(at_ms) % GRID_MS)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        rows = self._build(pair, key[1])
        with self._lock:
            self._cache[key] = rows
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return rows

    def _build(self, pair: str, end_ms: int) -> Rows | None:
        from trader.ml.training import pair_features

        try:
            fs = pair_features(self.data_dir, pair, end_ms - self.lookback_ms, end_ms)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            log.info("ML features for %s: %s", pair, exc)
            return None
        if not len(fs):
            return None
        return Rows(fs.X, fs.close_ms)


# -- predictions -------------------------------------------------------------------------------------------------
def signed_score(prediction: Any) -> float | None:
    """One number in −1..1 from a ``predictor.Prediction``: the direction models' weighted P(up) − P(down) across
    horizons when any answered, else the reversal model's P(bottom) − P(top); None when nothing answered."""
    from trader.ml.labels import BOTTOM, DOWN, TOP, UP

    probs = prediction.probabilities
    dirs = [p for t, p in probs.items() if t.startswith("dir_")]
    if dirs:
        if prediction.vote is not None:
            return float(prediction.vote.score)
        return float(sum(p[UP] - p[DOWN] for p in dirs) / len(dirs))
    if "reversal" in probs:
        p = probs["reversal"]
        return float(p[BOTTOM] - p[TOP])
    return None


class PredictorProvider:
    """``fusion.MLProvider`` over a ``Predictor``: ``predict(pair, at_ms, features)`` → ``fusion.Prediction``
    (direction and the probability of it, 0.5 + |score| / 2, so fusion's vote 2p − 1 is the signed score) or None
    (no fresh rows, or every model withheld). ``features`` (the strategy's indicator lines) is not what the models
    were trained on and is ignored; rows come from ``rows(pair, at_ms)``."""

    def __init__(self, predictor: Any, rows: Callable[[str, int], Rows | None], *,
                 max_lag_ms: int = GRID_MS, clock: Callable[[], float] = time.time):
        self.predictor = predictor
        self.rows = rows
        self.max_lag_ms = max_lag_ms
        self.clock = clock
        self.last_reason: dict[str, str] = {}
        self._told: set[tuple[str, str]] = set()

    def _abstain(self, pair: str, reason: str) -> None:
        self.last_reason[pair] = reason
        if (pair, reason[:40]) not in self._told:
            self._told.add((pair, reason[:40]))
            log.info("ML abstains for %s: %s", pair, reason)

    def predict(self, pair: str, at_ms: int, features: Mapping[str, float]) -> Any:
        from trader.strategy.fusion import Prediction as Vote

        try:
            rows = self.rows(pair, int(at_ms))
        except Exception as exc:  # a prediction must never break a decision
            self._abstain(pair, f"feature rows failed: {type(exc).__name__}: {exc}")
            return None
        if rows is None or not len(rows.close_ms):
            self._abstain(pair, "no stored candles to build features from")
            return None
        keep = rows.close_ms <= int(at_ms)
        if not keep.any():
            self._abstain(pair, "no feature row at or before the decision bar")
            return None
        X, close = rows.X[keep], rows.close_ms[keep]
        newest = int(close[-1])
        if int(at_ms) - newest > self.max_lag_ms:
            self._abstain(pair, f"stored candles end {(int(at_ms) - newest) // 60_000} min before the decision bar "
                                f"(the candle store is not being updated)")
            return None
        n = self.predictor.required_rows
        try:
            p = self.predictor.predict(X.iloc[-n:], at_ms=newest, now_ms=int(self.clock() * 1000))
        except Exception as exc:
            self._abstain(pair, f"prediction failed: {type(exc).__name__}: {exc}")
            return None
        score = signed_score(p)
        if score is None:
            self._abstain(pair, p.withheld_reason or "no model answered")
            return None
        self.last_reason.pop(pair, None)
        direction = 1 if score >= 0 else -1
        return Vote(direction, 0.5 + abs(score) / 2, ",".join(f"{k} {v}" for k, v in sorted(p.models.items())))


def install_provider(models_dir: Path | str, data_dir: Path | str) -> PredictorProvider | None:
    """Load the active models and make them the strategies' ML provider; None (and nothing changed) when no
    usable model is active."""
    from trader.ml.predictor import Predictor
    from trader.strategy.fusion import set_ml_provider

    predictor = Predictor.load_active(models_dir)
    if predictor is None:
        return None
    provider = PredictorProvider(predictor, StoreRows(data_dir))
    set_ml_provider(provider)
    log.info("ML provider installed: %s", ", ".join(f"{k} {v}" for k, v in sorted(predictor.versions.items())))
    return provider
