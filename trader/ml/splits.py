"""Purged, embargoed walk-forward splits by time.

Rows may come from several pairs at once; folds are cut on decision time (``close_ms``), never on row numbers.
For each fold: test = [test_start, test_end); training rows are earlier and are *purged*: a training row's label
ends at close_ms + horizon, and every row whose label could still be unknown at ``test_start − embargo`` is
dropped. The embargo is extra distance on top of the horizon (features such as a 4h indicator are serially
correlated beyond the label itself). The last ``val_frac`` of the training span is the validation window for early
stopping, purged from the fitted part the same way. Nothing after the test window is ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    fit: np.ndarray  # indices the model is fitted on
    val: np.ndarray  # early-stopping window (after fit, before test)
    test: np.ndarray
    test_start_ms: int
    test_end_ms: int


def _purged_before(t: np.ndarray, rows: np.ndarray, boundary_ms: int, horizon_ms: int, embargo_ms: int) -> np.ndarray:
    return rows[t[rows] + horizon_ms + embargo_ms < boundary_ms]


def holdout_split(close_ms: np.ndarray, rows: np.ndarray, horizon_ms: int, embargo_ms: int,
                  val_frac: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val): the last ``val_frac`` of the time span is validation; fit rows purged against it."""
    t = np.asarray(close_ms, dtype="int64")
    rows = np.asarray(rows)
    if not len(rows):
        return rows, rows
    lo, hi = int(t[rows].min()), int(t[rows].max()) + 1
    cut = hi - int((hi - lo) * val_frac)
    val = rows[t[rows] >= cut]
    fit = _purged_before(t, rows[t[rows] < cut], cut, horizon_ms, embargo_ms)
    return fit, val


def walk_forward(close_ms: np.ndarray, rows: np.ndarray, n_folds: int, horizon_ms: int, embargo_ms: int = 0,
                 min_train_frac: float = 0.4, val_frac: float = 0.15) -> list[Fold]:
    """``n_folds`` consecutive test windows over the last (1 − min_train_frac) of the span, expanding training."""
    t = np.asarray(close_ms, dtype="int64")
    rows = np.asarray(rows)
    lo, hi = int(t[rows].min()), int(t[rows].max()) + 1
    first = lo + int((hi - lo) * min_train_frac)
    edges = np.linspace(first, hi, n_folds + 1).astype("int64")
    folds = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        test = rows[(t[rows] >= a) & (t[rows] < b)]
        train = _purged_before(t, rows[t[rows] < a], int(a), horizon_ms, embargo_ms)
        if not len(test) or not len(train):
            continue
        fit, val = holdout_split(t, train, horizon_ms, embargo_ms, val_frac)
        folds.append(Fold(fit, val, test, int(a), int(b)))
    return folds


def check_fold(close_ms: np.ndarray, fold: Fold, horizon_ms: int, embargo_ms: int) -> None:
    """Raise AssertionError when a training or validation label could reach the test window, or a fitted label the
    validation window (used by the tests, and asserted by training before every fit)."""
    t = np.asarray(close_ms, dtype="int64")
    start = int(t[fold.test].min())
    for name, rows in (("fit", fold.fit), ("val", fold.val)):
        if len(rows):
            reach = int(t[rows].max()) + horizon_ms + embargo_ms
            assert reach < start, f"{name} labels reach {reach} ≥ test start {start}"
    if len(fold.fit) and len(fold.val):
        reach = int(t[fold.fit].max()) + horizon_ms + embargo_ms
        assert reach < int(t[fold.val].min()), f"fit labels reach {reach} ≥ validation start"
