"""Per-regime feature subsets: masking sets exactly the features outside a regime's subset to the scaled training
mean; the predictor reads the current regime's subset only when the model's walk-forward evaluation showed the
subsets beat all features out of sample (``use_regime_subsets``), and says which regime it used."""

from __future__ import annotations

import math

import numpy as np

from tests.ml.conftest import tiny_config
from trader.ml.features import FEATURE_NAMES
from trader.ml.predictor import Predictor
from trader.ml.selection import mask_to_subsets, row_regime
from trader.ml.training import MODEL_SPECS, candidate_rows


def test_mask_touches_only_features_outside_the_rows_regime_subset() -> None:
    feats = ["a", "b", "c"]
    X = np.arange(12, dtype=float).reshape(4, 3)
    fill = np.array([-1.0, -2.0, -3.0])
    regimes = np.array(["ranging", "trending", "unknown", "ranging"], dtype=object)
    out = mask_to_subsets(X, feats, {"ranging": ["b"], "trending": ["a", "c"]}, regimes, fill)
    np.testing.assert_array_equal(out, [[-1, 1, -3], [3, -2, 5], [6, 7, 8], [-1, 10, -3]])
    windows = np.stack([X, X])  # windows × steps × features: a window is masked by its own (newest) regime
    out = mask_to_subsets(windows, feats, {"ranging": ["c"]}, np.array(["ranging", "volatile"], dtype=object), fill)
    assert (out[0][:, :2] == fill[:2]).all() and (out[0][:, 2] == X[:, 2]).all() and (out[1] == X).all()
    assert (X == np.arange(12).reshape(4, 3)).all()  # the input is not changed


def test_row_regime_reads_the_one_hot_columns() -> None:
    row = np.full(len(FEATURE_NAMES), np.nan)
    assert row_regime(row, FEATURE_NAMES) == "unknown"
    row[FEATURE_NAMES.index("regime_trending")] = 1.0
    assert row_regime(row, FEATURE_NAMES) == "trending"


def test_the_evaluation_decides_and_the_predictor_follows(xgb_models, dataset) -> None:
    pred = Predictor.load_active(xgb_models)
    (m,) = pred.models
    rs = m.meta["metrics"]["regime_subsets"]
    assert rs["target"] == "reversal" and math.isfinite(rs["log_loss_all_features"])
    assert m.meta["use_regime_subsets"] == rs["used"]
    r = candidate_rows(dataset, MODEL_SPECS["xgb"], tiny_config())[-1]
    x = dataset.X[r:r + 1].copy()  # the shipped fortnight is too short for the 1h regime: mark the row trending
    x[0, [FEATURE_NAMES.index(f"regime_{g}") for g in ("ranging", "trending", "volatile", "breakout")]] = 0.0
    x[0, FEATURE_NAMES.index("regime_trending")] = 1.0
    keep = m.features[:5]
    m.meta["regime_features"] = {"trending": keep}
    m.meta["use_regime_subsets"] = False
    plain = pred.predict(x)
    assert plain.regime_subset == {}
    m.meta["use_regime_subsets"] = True
    cut = pred.predict(x)
    assert cut.regime_subset == {"xgb": "trending"}
    # the same as predicting from a row whose other features are missing (imputed with the training mean)
    row = x.copy()
    row[0, [FEATURE_NAMES.index(f) for f in m.features if f not in keep]] = np.nan
    m.meta["use_regime_subsets"] = False
    np.testing.assert_allclose(cut.probabilities["reversal"], pred.predict(row).probabilities["reversal"], rtol=1e-6)
    assert not np.allclose(cut.probabilities["reversal"], plain.probabilities["reversal"])
