"""Out-of-sample scores that cannot flatter: every figure is printed beside two baselines.

* majority: the most frequent class of the *training* window, with the training class frequencies as its
  probabilities (the "climatology" forecast for log loss, AUC and calibration);
* persistence: the class of the latest label already known at t (for an h-minute direction, the move of the h
  minutes that just ended), with probabilities from the training window's transition table P(y | latest known y).

Trading: the signal is taken where P(up) or P(down) ≥ the trading threshold; precision is the share of those calls
whose class came true. ``signal_backtest`` is a deliberately simple *vectorised* after-cost backtest of that
signal, not the engine: each call opens at the decision bar's close and closes h minutes later, one position at a
time per pair, no leverage, no stops; costs are taker fee + slippage on both sides and funding at the last known
rate for every 00/08/16 UTC settlement inside the holding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

EPS = 1e-7


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(y == pred)) if len(y) else math.nan


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else math.nan


def auc_binary(pos: np.ndarray, score: np.ndarray) -> float:
    n1 = int(pos.sum())
    n0 = len(pos) - n1
    if not n1 or not n0:
        return math.nan
    r = rankdata(score)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_ovr(y: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest AUC over the classes present."""
    vals = [auc_binary(y == c, proba[:, c]) for c in range(proba.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    if not len(y):
        return math.nan
    p = np.clip(proba[np.arange(len(y)), y], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def calibration(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Top-label expected calibration error and the reliability table (confidence bin → mean confidence,
    observed frequency, count)."""
    conf = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            table.append([round(float(edges[b]), 2), float(conf[m].mean()), float(hit[m].mean()), int(m.sum())])
            ece += m.mean() * abs(conf[m].mean() - hit[m].mean())
    return {"ece": float(ece), "reliability": table}


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    return {"accuracy": accuracy(y, pred), "balanced_accuracy": balanced_accuracy(y, pred, proba.shape[1]),
            "auc": auc_ovr(y, proba), "log_loss": log_loss(y, proba), "ece": calibration(y, proba)["ece"]}


@dataclass
class Baselines:
    """Fitted on training labels only."""

    prior: np.ndarray  # class frequencies
    transition: np.ndarray  # [previous class, class]

    @classmethod
    def fit(cls, y: np.ndarray, y_prev: np.ndarray, n_classes: int) -> Baselines:
        keep = y >= 0
        prior = np.bincount(y[keep], minlength=n_classes) + 1.0
        trans = np.ones((n_classes, n_classes))
        both = keep & (y_prev >= 0)
        np.add.at(trans, (y_prev[both], y[both]), 1.0)
        return cls(prior / prior.sum(), trans / trans.sum(axis=1, keepdims=True))

    def majority_proba(self, n: int) -> np.ndarray:
        return np.tile(self.prior, (n, 1))

    def persistence_proba(self, y_prev: np.ndarray) -> np.ndarray:
        out = self.majority_proba(len(y_prev))
        ok = y_prev >= 0
        out[ok] = self.transition[y_prev[ok]]
        return out

    def persistence_pred(self, y_prev: np.ndarray) -> np.ndarray:
        return np.where(y_prev >= 0, y_prev, int(np.argmax(self.prior)))


def lagged(y: np.ndarray, lag: int, segment: np.ndarray) -> np.ndarray:
    """y[t − lag] within the same segment (−1 elsewhere): the latest label already known at t."""
    out = np.full(len(y), -1, dtype="int64")
    if lag < len(y):
        same = segment[lag:] == segment[:-lag]
        out[lag:] = np.where(same, y[:-lag], -1)
    return out


def report(y: np.ndarray, proba: np.ndarray, y_prev: np.ndarray, base_prior: np.ndarray,
           base_trans_proba: np.ndarray) -> dict[str, Any]:
    """Model scores beside both baselines, on the rows with a known label. ``base_prior``/``base_trans_proba`` are
    per-row baseline probabilities fitted on each row's own training window."""
    k = y >= 0
    y, proba, y_prev = y[k], proba[k], y_prev[k]
    bp, bt = base_prior[k], base_trans_proba[k]
    n_classes = proba.shape[1]
    maj_pred = bp.argmax(axis=1)
    per_pred = np.where(y_prev >= 0, y_prev, maj_pred)
    majority = {"accuracy": accuracy(y, maj_pred), "balanced_accuracy": balanced_accuracy(y, maj_pred, n_classes),
                "auc": auc_ovr(y, bp), "log_loss": log_loss(y, bp), "ece": calibration(y, bp)["ece"]}
    persistence = {"accuracy": accuracy(y, per_pred),
                   "balanced_accuracy": balanced_accuracy(y, per_pred, n_classes),
                   "auc": auc_ovr(y, bt), "log_loss": log_loss(y, bt), "ece": calibration(y, bt)["ece"]}
    return {"n": int(len(y)), "class_share": (np.bincount(y, minlength=n_classes) / max(len(y), 1)).tolist(),
            "model": scores(y, proba), "majority": majority, "persistence": persistence,
            "reliability": calibration(y, proba)["reliability"]}


def calls(proba: np.ndarray, threshold: float, long_class: int, short_class: int) -> np.ndarray:
    """+1 / −1 / 0 per row: the more likely of the two trade classes when it reaches ``threshold``."""
    pl, ps = proba[:, long_class], proba[:, short_class]
    return np.where((pl >= threshold) & (pl >= ps), 1, np.where((ps >= threshold) & (ps > pl), -1, 0))


def precision_at(y: np.ndarray, signal: np.ndarray, long_class: int, short_class: int) -> dict[str, float]:
    k = (y >= 0) & (signal != 0)
    hit = np.where(signal[k] > 0, y[k] == long_class, y[k] == short_class)
    known = int((y >= 0).sum())
    return {"calls": int(k.sum()), "coverage": float(k.sum() / known) if known else math.nan,
            "precision": float(hit.mean()) if k.any() else math.nan,
            "long_calls": int((signal[k] > 0).sum()), "short_calls": int((signal[k] < 0).sum())}


def signal_backtest(signal: np.ndarray, fwd_return: np.ndarray, close_ms: np.ndarray, group: np.ndarray,
                    funding_rate: np.ndarray, hold_ms: int, cost_round_trip: float) -> dict[str, float]:
    """See the module text. ``group``: pair id (one position at a time per pair). Returns per-trade figures."""
    order = np.lexsort((close_ms, group))
    nets, grosses = [], []
    busy_until: dict[int, int] = {}
    settle = 8 * 3_600_000
    for i in order:
        s = signal[i]
        if s == 0 or not np.isfinite(fwd_return[i]):
            continue
        g, t = int(group[i]), int(close_ms[i])
        if t < busy_until.get(g, -1):
            continue
        busy_until[g] = t + hold_ms
        n_settle = (t + hold_ms) // settle - t // settle
        fr = funding_rate[i] if np.isfinite(funding_rate[i]) else 0.0
        gross = s * fwd_return[i]
        grosses.append(gross)
        nets.append(gross - cost_round_trip - s * fr * n_settle)
    if not nets:
        return {"trades": 0, "win_rate": math.nan, "mean_net_bps": math.nan, "mean_gross_bps": math.nan,
                "total_net": 0.0}
    nets_a, gross_a = np.asarray(nets), np.asarray(grosses)
    return {"trades": len(nets), "win_rate": float((nets_a > 0).mean()), "mean_net_bps": float(nets_a.mean() * 1e4),
            "mean_gross_bps": float(gross_a.mean() * 1e4), "total_net": float(nets_a.sum())}


THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.10, 0.91, 0.05))


def choose_threshold(y: np.ndarray, proba: np.ndarray, long_class: int, short_class: int,
                     min_coverage: float = 0.01, grid: tuple[float, ...] = THRESHOLD_GRID) -> float:
    """The trading threshold, picked on a validation window (never the test window): the one with the best
    precision among those that still call at least ``min_coverage`` of the rows (ties: the lower threshold).
    Calibrated probabilities of rare classes (a turn, a 5-minute move beyond costs) seldom reach 0.5, so one
    fixed threshold for every target would mean no trades for some and noise for others."""
    k = y >= 0
    y, proba = y[k], proba[k]
    best, best_prec = grid[-1], -1.0
    for thr in grid:
        sig = calls(proba, thr, long_class, short_class)
        pr = precision_at(y, sig, long_class, short_class)
        if pr["calls"] and pr["coverage"] >= min_coverage and pr["precision"] > best_prec + 1e-12:
            best, best_prec = thr, pr["precision"]
    return float(best)
