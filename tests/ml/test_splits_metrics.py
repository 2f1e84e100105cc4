"""Purged, embargoed walk-forward: no training or validation label reaches its test window; baselines and
threshold choice use training/validation data only."""

from __future__ import annotations

import numpy as np
import pytest

from trader.ml import metrics as M
from trader.ml.splits import Fold, check_fold, holdout_split, walk_forward
from trader.ml.training import MODEL_SPECS, candidate_rows, horizon_ms

from .conftest import tiny_config

H = 240 * 60_000
E = 60 * 60_000


def test_walk_forward_purges_and_embargoes_two_pairs_interleaved() -> None:
    t = np.concatenate([np.arange(5000), np.arange(100, 5100)]).astype("int64") * 300_000  # two pairs, overlapping
    rows = np.arange(len(t))
    folds = walk_forward(t, rows, 4, H, E)
    assert len(folds) == 4
    last_end = -1
    for f in folds:
        check_fold(t, f, H, E)
        start = t[f.test].min()
        assert t[f.fit].max() + H + E < start and t[f.val].max() + H + E < start
        assert t[f.fit].max() + H + E < t[f.val].min()
        assert not np.intersect1d(np.r_[f.fit, f.val], f.test).size
        assert (t[np.r_[f.fit, f.val]] < start).all()  # nothing after the test window trains
        assert f.test_start_ms >= last_end
        last_end = f.test_end_ms


def test_check_fold_catches_a_leaking_fold() -> None:
    t = np.arange(1000, dtype="int64") * 300_000
    bad = Fold(fit=np.arange(0, 500), val=np.arange(520, 600), test=np.arange(600, 700), test_start_ms=0,
               test_end_ms=0)
    with pytest.raises(AssertionError, match="reach"):
        check_fold(t, bad, H, E)


def test_dataset_folds_respect_each_models_horizon(dataset) -> None:
    cfg = tiny_config(folds=3)
    for kind in ("gru", "lstm", "xgb"):
        spec = MODEL_SPECS[kind]
        rows = candidate_rows(dataset, spec, cfg)
        hz = horizon_ms(spec, cfg.labels)
        for f in walk_forward(dataset.close_ms, rows, 3, hz, E, cfg.min_train_frac, cfg.val_frac):
            check_fold(dataset.close_ms, f, hz, E)
            # every training label is known before the test window opens
            for target in spec.targets:
                bars = cfg.labels.pivot_bars if target == "reversal" else int(target.split("_")[1]) // 5
                lag = bars * 300_000
                assert (dataset.close_ms[f.fit] + lag < dataset.close_ms[f.test].min()).all()


def test_holdout_split_purges() -> None:
    t = np.arange(1000, dtype="int64") * 300_000
    fit, val = holdout_split(t, np.arange(1000), H, E, 0.2)
    assert t[fit].max() + H + E < t[val].min()


def test_baselines_and_scores() -> None:
    y = np.array([1, 1, 1, 0, 2, 1, 1, 2, 0, 1])
    prev = M.lagged(y, 1, np.zeros(10, "int64"))
    assert prev[0] == -1 and (prev[1:] == y[:-1]).all()
    b = M.Baselines.fit(y, prev, 3)
    assert np.argmax(b.prior) == 1
    np.testing.assert_allclose(b.transition.sum(axis=1), 1.0)
    perfect = np.eye(3)[y] * 0.98 + 0.01
    s = M.scores(y, perfect)
    assert s["accuracy"] == 1.0 and s["balanced_accuracy"] == 1.0 and s["auc"] == 1.0
    assert s["log_loss"] < M.log_loss(y, b.majority_proba(len(y)))
    rep = M.report(y, perfect, prev, b.majority_proba(10), b.persistence_proba(prev))
    assert rep["majority"]["accuracy"] == 0.6 and rep["n"] == 10


def test_threshold_is_chosen_on_validation_precision() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    p = np.full((2000, 3), 1 / 3)
    strong = rng.random(2000) < 0.1
    p[strong] = 0.05
    p[strong, y[strong]] = 0.9  # confident and right on 10 % of rows
    thr = M.choose_threshold(y, p, 2, 0, min_coverage=0.01)
    assert thr > 1 / 3
    sig = M.calls(p, thr, 2, 0)
    assert M.precision_at(y, sig, 2, 0)["precision"] == 1.0


def test_signal_backtest_charges_costs_and_funding() -> None:
    sig = np.array([1, 1, -1, 0])
    fwd = np.array([0.01, 0.01, -0.01, 0.05])
    t = np.array([0, 60_000, 8 * 3_600_000 - 60_000, 0], dtype="int64")
    out = M.signal_backtest(sig, fwd, t, np.array([0, 0, 0, 1]), np.full(4, 0.0001), hold_ms=3_600_000,
                            cost_round_trip=0.001)
    assert out["trades"] == 2  # the second long overlaps the first
    # long: +1 % − 0.1 %; short across a settlement receives positive funding: +1 % − 0.1 % + 0.01 %
    assert out["mean_net_bps"] == pytest.approx(((0.01 - 0.001) + (0.01 - 0.001 + 0.0001)) / 2 * 1e4)
