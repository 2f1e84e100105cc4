"""Training: dataset → walk-forward out-of-sample evaluation → final fit → registry.

    ds = build_dataset(data_dir, pairs, start_ms, end_ms)
    results = train_models(ds, ["gru", "xgb"], TrainConfig(), ModelRegistry(models_dir), progress=cb)

Every model is scored out of sample on purged, embargoed walk-forward folds (a fresh model per fold, scaler and
baselines fitted on that fold's training rows only); the stored model is then fitted once on all rows (the last
``val_frac`` kept for early stopping, the OOD threshold and importance). The metrics stored with it are the
walk-forward ones, never in-sample figures.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trader.analysis.analyzer import AnalyzerConfig, analyze
from trader.ml import metrics as M
from trader.ml import selection
from trader.ml.data import GapPolicy, load_pair
from trader.ml.features import FEATURE_NAMES, FeatureSet, build_features
from trader.ml.labels import (
    BOTTOM,
    DOWN,
    HORIZONS_MIN,
    TOP,
    UP,
    LabelParams,
    direction_labels,
    forward_returns,
    known_lag_bars,
    reversal_labels,
)
from trader.ml.ood import DissimilarityGuard
from trader.ml.scaling import Scaler
from trader.ml.splits import check_fold, holdout_split, walk_forward
from trader.ml.xgb_model import XGBModel, XGBParams

GRID_MS = 300_000
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # gru | lstm | xgb
    task: str  # direction | reversal
    targets: tuple[str, ...]
    seq_len: int = 1


MODEL_SPECS: dict[str, ModelSpec] = {
    "gru": ModelSpec("gru", "direction", ("dir_5", "dir_15", "dir_30"), seq_len=24),
    "lstm": ModelSpec("lstm", "direction", ("dir_60", "dir_240"), seq_len=48),
    "xgb": ModelSpec("xgb", "reversal", ("reversal",)),
}


@dataclass(frozen=True)
class TrainConfig:
    folds: int = 3
    min_train_frac: float = 0.4
    val_frac: float = 0.15
    embargo_min: int = 60
    scaler: str = "zscore"  # zscore | minmax
    max_missing: float = 0.5  # a feature missing in more of the training rows is not used
    threshold: float | None = None  # trading threshold on P(up)/P(down), P(bottom)/P(top); None: chosen per
    # target on each validation window (metrics.choose_threshold), never on test data
    min_coverage: float = 0.01
    labels: LabelParams = field(default_factory=LabelParams)
    xgb: XGBParams = field(default_factory=XGBParams)
    epochs: int = 15
    units: int = 32
    batch: int = 256
    stride: int = 2
    patience: int = 3
    seed: int = 0
    expiry_days: float = 14.0
    permutation_rows: int = 2000
    ood_quantile: float = 0.995
    adaptive_patience: int = 3
    seq_len: dict[str, int] = field(default_factory=dict)  # override per kind (tests use short windows)


@dataclass
class Dataset:
    pairs: list[str]
    X: np.ndarray  # (n, len(FEATURE_NAMES)) float64
    close_ms: np.ndarray
    close: np.ndarray
    segment: np.ndarray  # globally unique over pairs
    pos: np.ndarray
    group: np.ndarray  # pair index
    regime: np.ndarray
    sample_ok: np.ndarray
    labels: dict[str, np.ndarray]
    fwd: dict[str, np.ndarray]  # target → forward return of the trade the target implies
    funding: np.ndarray  # last known funding rate (fraction)

    def __len__(self) -> int:
        return len(self.close_ms)

    @property
    def span_ms(self) -> tuple[int, int]:
        return int(self.close_ms.min()), int(self.close_ms.max())

    def subset(self, keep: np.ndarray) -> Dataset:
        """Rows where ``keep``; segments stay intact only if ``keep`` is a contiguous time cut per pair."""
        return Dataset(self.pairs, self.X[keep], self.close_ms[keep], self.close[keep], self.segment[keep],
                       self.pos[keep], self.group[keep], self.regime[keep], self.sample_ok[keep],
                       {k: v[keep] for k, v in self.labels.items()}, {k: v[keep] for k, v in self.fwd.items()},
                       self.funding[keep])


def dataset_from_features(fsets: Sequence[FeatureSet], lp: LabelParams | None = None) -> Dataset:
    lp = lp or LabelParams()
    parts: dict[str, list[np.ndarray]] = {}
    seg_base = 0
    for g, fs in enumerate(fsets):
        labels = {f"dir_{m}": y for m, y in direction_labels(fs, HORIZONS_MIN, lp).items()}
        labels["reversal"] = reversal_labels(fs, lp)
        fwd = {f"dir_{m}": forward_returns(fs, m) for m in HORIZONS_MIN}
        fwd["reversal"] = forward_returns(fs, lp.pivot_bars * 5)
        cols = {"X": fs.X.to_numpy("float64"), "close_ms": fs.close_ms, "close": fs.close,
                "segment": fs.segment + seg_base, "pos": fs.pos, "group": np.full(len(fs), g),
                "regime": fs.regime, "sample_ok": fs.sample_ok,
                "funding": fs.X["funding_bps"].to_numpy() / 1e4,
                **{f"y:{k}": v for k, v in labels.items()}, **{f"r:{k}": v for k, v in fwd.items()}}
        for k, v in cols.items():
            parts.setdefault(k, []).append(np.asarray(v))
        seg_base += int(fs.segment.max()) + 1 if len(fs) else 0
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Dataset([fs.pair for fs in fsets], cat["X"], cat["close_ms"].astype("int64"), cat["close"],
                   cat["segment"], cat["pos"], cat["group"], cat["regime"], cat["sample_ok"].astype(bool),
                   {k[2:]: v for k, v in cat.items() if k.startswith("y:")},
                   {k[2:]: v for k, v in cat.items() if k.startswith("r:")}, cat["funding"])


def pair_features(data_dir: Path, pair: str, start_ms: int | None, end_ms: int | None,
                  gaps: GapPolicy | None = None) -> FeatureSet:
    pd_ = load_pair(Path(data_dir), pair, start_ms, end_ms, policy=gaps)
    filled = pd_.candles.loc[pd_.candles["filled"], "timestamp"].to_numpy("int64")
    candles = pd_.candles.drop(columns=["filled"])
    analysis = analyze(pair, candles, funding=pd_.funding, base_timeframe=pd_.timeframe, config=AnalyzerConfig())
    return build_features(analysis, filled)


def build_dataset(data_dir: Path, pairs: Sequence[str], start_ms: int | None = None, end_ms: int | None = None,
                  lp: LabelParams | None = None, progress: Progress | None = None) -> Dataset:
    fsets = []
    for i, pair in enumerate(pairs):
        if progress:
            progress(i / max(len(pairs), 1), f"features {pair}")
        fsets.append(pair_features(data_dir, pair, start_ms, end_ms))
    return dataset_from_features(fsets, lp)


# ------------------------------------------------------------------------------------------------ fitting
def horizon_ms(spec: ModelSpec, lp: LabelParams) -> int:
    return max(known_lag_bars(t, lp) for t in spec.targets) * GRID_MS


def seq_len_of(spec: ModelSpec, cfg: TrainConfig) -> int:
    return cfg.seq_len.get(spec.kind, spec.seq_len)


def candidate_rows(ds: Dataset, spec: ModelSpec, cfg: TrainConfig) -> np.ndarray:
    ok = ds.sample_ok & np.any(np.vstack([ds.labels[t] >= 0 for t in spec.targets]), axis=0)
    ok &= ds.pos >= seq_len_of(spec, cfg) - 1
    return np.flatnonzero(ok)


def usable_features(ds: Dataset, rows: np.ndarray, cfg: TrainConfig, drop: set[str] = frozenset()) -> list[str]:
    missing = np.isnan(ds.X[rows]).mean(axis=0) if len(rows) else np.ones(ds.X.shape[1])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(ds.X[rows], axis=0) if len(rows) else np.zeros(ds.X.shape[1])
    return [f for j, f in enumerate(FEATURE_NAMES)
            if missing[j] <= cfg.max_missing and np.isfinite(sd[j]) and sd[j] > 0 and f not in drop]


@dataclass
class Fitted:
    spec: ModelSpec
    model: Any
    scaler: Scaler
    features: list[str]
    Z: np.ndarray  # every dataset row, scaled with this scaler
    priors: dict[str, list[float]]  # class frequencies of the fitted rows per target

    def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """target → (len(rows), 3) calibrated probabilities (class balancing undone, see ``prior_correct``)."""
        if self.spec.kind == "xgb":
            raw = {self.spec.targets[0]: self.model.predict_proba(self.Z[rows])}
        else:
            raw = self.model.predict_proba(self.Z, rows)
        return {t: prior_correct(p, self.priors[t]) for t, p in raw.items()}


def class_priors(y: np.ndarray) -> list[float]:
    c = np.bincount(y[y >= 0], minlength=3) + 1.0
    return (c / c.sum()).tolist()


def prior_correct(p_balanced: np.ndarray, prior: Sequence[float]) -> np.ndarray:
    """Models are fitted with class-balanced weights (so the rare up/down/turn classes are learned at all), which
    makes them estimate P(c | x) / π_c. Multiplying by the training class frequencies π and renormalising gives
    back calibrated probabilities, which trading thresholds and log loss need."""
    q = np.asarray(p_balanced, dtype="float64") * np.asarray(prior, dtype="float64")
    return q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-12)


def fit_model(spec: ModelSpec, ds: Dataset, fit_rows: np.ndarray, val_rows: np.ndarray, cfg: TrainConfig,
              features: list[str], init: Any = None, epochs: int | None = None, rounds: int | None = None,
              scaler: Scaler | None = None, on_epoch: Callable[[int, dict], None] | None = None) -> Fitted:
    cols = [FEATURE_NAMES.index(f) for f in features]
    if scaler is None:
        scaler = Scaler.fit(ds.X[np.ix_(fit_rows, cols)], features, cfg.scaler)  # training rows only
    Z = scaler.transform(ds.X[:, cols])
    if spec.kind == "xgb":
        t = spec.targets[0]
        model: Any = XGBModel.fit(Z[fit_rows], ds.labels[t][fit_rows], Z[val_rows], ds.labels[t][val_rows], 3,
                                  replace(cfg.xgb, seed=cfg.seed), feature_names=None, init=init, rounds=rounds)
    else:
        from trader.ml.nets import NetModel, NetParams

        p = NetParams(kind=spec.kind, seq_len=seq_len_of(spec, cfg), units=cfg.units, batch=cfg.batch,
                      epochs=cfg.epochs, patience=cfg.patience, stride=cfg.stride, seed=cfg.seed)
        model = NetModel.fit(Z, fit_rows, val_rows, {t: ds.labels[t] for t in spec.targets}, p, init=init,
                             epochs=epochs, on_epoch=on_epoch)
    return Fitted(spec, model, scaler, features, Z, {t: class_priors(ds.labels[t][fit_rows]) for t in spec.targets})


def _trade_classes(target: str) -> tuple[int, int]:
    return (BOTTOM, TOP) if target == "reversal" else (UP, DOWN)


def _calls_rowwise(proba: np.ndarray, thr: np.ndarray, long_c: int, short_c: int) -> np.ndarray:
    out = np.zeros(len(proba), dtype="int64")
    for v in np.unique(thr):
        m = thr == v
        out[m] = M.calls(proba[m], float(v), long_c, short_c)
    return out


def _hold_ms(target: str, lp: LabelParams) -> int:
    return known_lag_bars(target, lp) * GRID_MS


def evaluate(spec: ModelSpec, ds: Dataset, cfg: TrainConfig, progress: Progress | None = None,
             drop: set[str] = frozenset()) -> dict[str, Any]:
    """Walk-forward out-of-sample report for every target of ``spec``."""
    lp = cfg.labels
    rows = candidate_rows(ds, spec, cfg)
    hz, emb = horizon_ms(spec, lp), cfg.embargo_min * 60_000
    folds = walk_forward(ds.close_ms, rows, cfg.folds, hz, emb, cfg.min_train_frac, cfg.val_frac)
    if not folds:
        raise ValueError("not enough data for a walk-forward fold")
    n = len(ds)
    proba = {t: np.full((n, 3), np.nan) for t in spec.targets}
    bprior = {t: np.full((n, 3), np.nan) for t in spec.targets}
    btrans = {t: np.full((n, 3), np.nan) for t in spec.targets}
    prev = {t: M.lagged(ds.labels[t], known_lag_bars(t, lp), ds.segment) for t in spec.targets}
    thr = {t: np.full(n, np.nan) for t in spec.targets}
    primary = spec.targets[len(spec.targets) // 2]
    masked = np.full((n, 3), np.nan)  # primary target, features outside the row's regime subset masked
    tested = np.zeros(n, dtype=bool)
    fold_info = []
    for i, fold in enumerate(folds):
        if progress:
            progress(i / (len(folds) + 1), f"{spec.kind}: fold {i + 1}/{len(folds)}")
        check_fold(ds.close_ms, fold, hz, emb)
        train_rows = np.concatenate([fold.fit, fold.val])
        features = usable_features(ds, fold.fit, cfg, drop)
        fitted = fit_model(spec, ds, fold.fit, fold.val, cfg, features)
        pred = fitted.predict(fold.test)
        pval = fitted.predict(fold.val) if cfg.threshold is None and len(fold.val) else {}
        for t in spec.targets:
            proba[t][fold.test] = pred[t]
            thr[t][fold.test] = (cfg.threshold if cfg.threshold is not None else
                                 M.choose_threshold(ds.labels[t][fold.val], pval[t], *_trade_classes(t),
                                                    cfg.min_coverage) if t in pval else 0.5)
            b = M.Baselines.fit(ds.labels[t][train_rows], prev[t][train_rows], 3)
            bprior[t][fold.test] = b.majority_proba(len(fold.test))
            btrans[t][fold.test] = b.persistence_proba(prev[t][fold.test])
        if len(fold.val) >= 50:
            masked[fold.test] = _subset_predictions(fitted, ds, fold.val, fold.test, primary, cfg)
        tested[fold.test] = True
        fold_info.append({"fit_rows": int(len(fold.fit)), "val_rows": int(len(fold.val)),
                          "test_rows": int(len(fold.test)), "test_start_ms": fold.test_start_ms,
                          "test_end_ms": fold.test_end_ms, "features": len(features)})
    out: dict[str, Any] = {"folds": fold_info, "purge_ms": hz, "embargo_ms": emb,
                           "threshold": cfg.threshold if cfg.threshold is not None else "per fold, from validation",
                           "targets": {}}
    idx = np.flatnonzero(tested)
    for t in spec.targets:
        y = ds.labels[t][idx]
        rep = M.report(y, proba[t][idx], prev[t][idx], bprior[t][idx], btrans[t][idx])
        long_c, short_c = _trade_classes(t)
        sig = _calls_rowwise(proba[t][idx], thr[t][idx], long_c, short_c)
        rep["thresholds"] = sorted({float(x) for x in thr[t][idx]})
        rep["trading"] = M.precision_at(y, sig, long_c, short_c)
        bt = dict(fwd_return=ds.fwd[t][idx], close_ms=ds.close_ms[idx], group=ds.group[idx],
                  funding_rate=ds.funding[idx], hold_ms=_hold_ms(t, lp), cost_round_trip=lp.round_trip)
        rep["backtest"] = M.signal_backtest(sig, **bt)
        p_prev = prev[t][idx]
        per_sig = np.where(p_prev == long_c, 1, np.where(p_prev == short_c, -1, 0))
        rep["backtest_persistence"] = M.signal_backtest(per_sig, **bt)
        rep["trading_persistence"] = M.precision_at(y, per_sig, long_c, short_c)
        out["targets"][t] = rep
    y = ds.labels[primary][idx]
    both = (y >= 0) & np.isfinite(masked[idx]).all(axis=1) & np.isfinite(proba[primary][idx]).all(axis=1)
    yb = y[both]
    rows_ll = [-np.log(np.clip(p[idx][both][np.arange(len(yb)), yb], M.EPS, 1.0)) for p in (proba[primary], masked)]
    diff = rows_ll[1] - rows_ll[0]  # per row: subsets minus all features (negative: the subsets did better)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.nan
    gain = float(-diff.mean()) if len(diff) else math.nan
    out["regime_subsets"] = {
        "target": primary, "rows": int(len(diff)),
        "log_loss_all_features": float(rows_ll[0].mean()) if len(diff) else math.nan,
        "log_loss_regime_subsets": float(rows_ll[1].mean()) if len(diff) else math.nan,
        "gain": gain, "gain_se": se,
        # a difference within noise is no reason to change what the model reads
        "used": bool(len(diff) >= 100 and math.isfinite(se) and gain > 2 * se),
        "rule": "per fold: subsets chosen on the validation rows, both ways scored on the test rows; used when "
                "the paired log-loss gain exceeds two standard errors"}
    if spec.task == "reversal":
        tr = out["targets"]["reversal"]["trading"]
        out["seed_target"] = {
            "rule": "reversal accuracy > 65 %: precision of the reversal calls (bottom/top) at the trading "
                    "threshold, out of sample, with at least 30 calls",
            "value": tr["precision"], "calls": tr["calls"],
            "met": bool(tr["calls"] >= 30 and not math.isnan(tr["precision"]) and tr["precision"] > 0.65)}
    return out


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Short per-target figures for listings: model vs baselines."""
    out = {}
    for t, rep in evaluation.get("targets", {}).items():
        out[t] = {"bal_acc": rep["model"]["balanced_accuracy"], "log_loss": rep["model"]["log_loss"],
                  "auc": rep["model"]["auc"], "ll_majority": rep["majority"]["log_loss"],
                  "ll_persistence": rep["persistence"]["log_loss"], "precision": rep["trading"]["precision"],
                  "calls": rep["trading"]["calls"], "net_bps": rep["backtest"]["mean_net_bps"],
                  "thresholds": rep.get("thresholds")}
    return out


def beats_baselines(evaluation: dict[str, Any]) -> bool:
    """Out-of-sample log loss below both baselines on at least one target and not worse than the majority
    baseline on average."""
    reps = list(evaluation.get("targets", {}).values())
    if not reps:
        return False
    better = [r["model"]["log_loss"] < min(r["majority"]["log_loss"], r["persistence"]["log_loss"]) for r in reps]
    mean_gap = np.mean([r["model"]["log_loss"] - r["majority"]["log_loss"] for r in reps])
    return bool(any(better) and mean_gap <= 0)


def _predict_fn(fitted: Fitted, target: str) -> Callable[[np.ndarray], np.ndarray]:
    prior = fitted.priors[target]
    if fitted.spec.kind == "xgb":
        return lambda Z: prior_correct(fitted.model.predict_proba(Z), prior)

    def f(windows: np.ndarray) -> np.ndarray:
        res = fitted.model.model.predict_on_batch(windows.astype("float32"))
        return prior_correct(np.asarray(res[target], dtype="float64"), prior)

    return f


def _inputs(fitted: Fitted, rows: np.ndarray) -> np.ndarray:
    if fitted.spec.kind == "xgb":
        return fitted.Z[rows]
    from trader.ml.nets import gather

    return gather(fitted.Z, rows, fitted.model.params.seq_len)


def _fill_z(fitted: Fitted) -> np.ndarray:
    return fitted.scaler.transform(fitted.scaler.fill[None, :])[0].astype("float64")


def _subset_predictions(fitted: Fitted, ds: Dataset, val_rows: np.ndarray, test_rows: np.ndarray, target: str,
                        cfg: TrainConfig) -> np.ndarray:
    """Test-row probabilities of ``target`` with each row's features cut to its regime's subset, the subsets
    chosen on ``val_rows`` exactly as ``final_fit`` chooses the stored ones."""
    fn = _predict_fn(fitted, target)
    subsets = selection.regime_subsets(fn, _inputs(fitted, val_rows), ds.labels[target][val_rows],
                                       ds.regime[val_rows], fitted.features,
                                       max_rows=max(300, cfg.permutation_rows // 2), seed=cfg.seed)
    X = selection.mask_to_subsets(_inputs(fitted, test_rows), fitted.features, subsets, ds.regime[test_rows],
                                  _fill_z(fitted))
    return fn(X)


def final_fit(spec: ModelSpec, ds: Dataset, cfg: TrainConfig, drop: set[str] = frozenset(), init: Any = None,
              scaler: Scaler | None = None, epochs: int | None = None, rounds: int | None = None,
              features: list[str] | None = None) -> tuple[Fitted, DissimilarityGuard, dict[str, Any]]:
    rows = candidate_rows(ds, spec, cfg)
    hz, emb = horizon_ms(spec, cfg.labels), cfg.embargo_min * 60_000
    fit_rows, val_rows = holdout_split(ds.close_ms, rows, hz, emb, cfg.val_frac)
    if not len(fit_rows):
        raise ValueError("not enough data to train")
    features = features or usable_features(ds, fit_rows, cfg, drop)
    fitted = fit_model(spec, ds, fit_rows, val_rows, cfg, features, init=init, scaler=scaler, epochs=epochs,
                       rounds=rounds)
    guard = DissimilarityGuard.fit(fitted.Z[fit_rows], fitted.Z[val_rows], features, quantile=cfg.ood_quantile,
                                   seed=cfg.seed)
    primary = spec.targets[len(spec.targets) // 2]
    pred = _predict_fn(fitted, primary)
    imp_rows = val_rows if len(val_rows) >= 50 else fit_rows[-2000:]
    y = ds.labels[primary][imp_rows]
    X_imp = _inputs(fitted, imp_rows)
    perm = selection.permutation_importance(pred, X_imp, y, features, max_rows=cfg.permutation_rows, seed=cfg.seed)
    regimes = selection.regime_subsets(pred, X_imp, y, ds.regime[imp_rows], features,
                                       max_rows=max(300, cfg.permutation_rows // 2), seed=cfg.seed)
    gain = fitted.model.gain_importance(features) if spec.kind == "xgb" else None
    thresholds = {}
    pv = fitted.predict(val_rows) if len(val_rows) else {}
    for t in spec.targets:
        thresholds[t] = (cfg.threshold if cfg.threshold is not None else
                         M.choose_threshold(ds.labels[t][val_rows], pv[t], *_trade_classes(t), cfg.min_coverage)
                         if t in pv else 0.5)
    info = {"fit_rows": int(len(fit_rows)), "val_rows": int(len(val_rows)),
            "fit_start_ms": int(ds.close_ms[fit_rows].min()), "fit_end_ms": int(ds.close_ms[fit_rows].max()),
            "val_end_ms": int(ds.close_ms[val_rows].max()) if len(val_rows) else None,
            "permutation": perm, "gain": gain, "regime_features": regimes, "primary_target": primary,
            "thresholds": thresholds}
    return fitted, guard, info


@dataclass
class TrainResult:
    name: str
    version: str
    evaluation: dict[str, Any] | None
    activated: bool
    note: str


def model_meta(spec: ModelSpec, fitted: Fitted, info: dict[str, Any], evaluation: dict[str, Any] | None,
               ds: Dataset, cfg: TrainConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    now = int(time.time() * 1000)
    params = fitted.model.params_dict() if spec.kind != "xgb" else fitted.model.params
    top = sorted(info["permutation"].items(), key=lambda kv: -kv[1])[:15]
    return {
        "kind": spec.kind, "task": spec.task, "heads": list(spec.targets), "targets": list(spec.targets),
        "classes": ["none", "bottom", "top"] if spec.task == "reversal" else ["down", "flat", "up"],
        "n_classes": 3, "seq_len": seq_len_of(spec, cfg) if spec.kind != "xgb" else 1, "params": params,
        "training": {"pairs": ds.pairs, "start_ms": ds.span_ms[0], "end_ms": ds.span_ms[1],
                     **{k: info[k] for k in ("fit_rows", "val_rows", "fit_start_ms", "fit_end_ms", "val_end_ms")}},
        "labels": asdict(cfg.labels), "thresholds": info["thresholds"],
        "trade_threshold": min(info["thresholds"].values()), "scaler_kind": cfg.scaler,
        "metrics": evaluation, "summary": summary(evaluation) if evaluation else {},
        "beats_baselines": beats_baselines(evaluation) if evaluation else None,
        "importance_top": top, "regime_features": info["regime_features"], "primary_target": info["primary_target"],
        # masked to the regime's subset at prediction time only when that beat all features out of sample
        "use_regime_subsets": bool(evaluation and evaluation.get("regime_subsets", {}).get("used")),
        "baseline_prior": _priors(ds, spec), "priors": fitted.priors, "created_ms": now,
        "expires_ms": now + int(cfg.expiry_days * 86_400_000), **(extra or {}),
    }


def _priors(ds: Dataset, spec: ModelSpec) -> dict[str, list[float]]:
    out = {}
    for t in spec.targets:
        y = ds.labels[t][ds.sample_ok & (ds.labels[t] >= 0)]
        c = np.bincount(y, minlength=3) + 1.0
        out[t] = (c / c.sum()).tolist()
    return out


def train_models(ds: Dataset, names: Sequence[str], cfg: TrainConfig, registry: Any,
                 progress: Progress | None = None, activate: str = "if-better", evaluate_oos: bool = True,
                 model_names: dict[str, str] | None = None) -> list[TrainResult]:
    """Train each of ``names`` (keys of MODEL_SPECS). ``activate``: "always", "never" or "if-better" (only when
    it beats both baselines out of sample and no version is active yet)."""
    results = []
    steps = len(names)
    for i, kind in enumerate(names):
        spec = MODEL_SPECS[kind]
        name = (model_names or {}).get(kind, kind)

        def sub(frac: float, msg: str, i: int = i) -> None:
            if progress:
                progress((i + 0.9 * frac) / steps, msg)

        drop = selection.adaptive_drop(selection.load_history(registry.root, name), cfg.adaptive_patience)
        evaluation = evaluate(spec, ds, cfg, sub, drop) if evaluate_oos and cfg.folds > 0 else None
        sub(0.95 if evaluation else 0.0, f"{kind}: final fit")
        fitted, guard, info = final_fit(spec, ds, cfg, drop)
        meta = model_meta(spec, fitted, info, evaluation, ds, cfg, {"dropped_features": sorted(drop)})
        version = registry.save(name, fitted.model, fitted.scaler, guard, meta)
        selection.record(registry.root, name, version, info["gain"], info["permutation"])
        good = bool(meta["beats_baselines"])
        active = registry.active().get(name)
        do = activate == "always" or (activate == "if-better" and good and active is None)
        if do:
            registry.activate(name, version)
        if do:
            note = "activated"
        elif activate == "if-better" and evaluation is None:
            note = f"not activated: no out-of-sample evaluation (bsmart models activate {name} {version})"
        elif activate == "if-better" and not good:
            note = "not activated: does not beat the baselines out of sample"
        elif activate == "if-better" and active:
            note = f"not activated: {active} stays active (bsmart models activate {name} {version})"
        else:
            note = "not activated"
        results.append(TrainResult(name, version, evaluation, do, note))
        if progress:
            progress((i + 1) / steps, f"{kind}: saved {version}")
    return results
