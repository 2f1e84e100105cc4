"""Machine-learning signals (issue 14): causal features, labels, models, honest evaluation, a registry and a
predictor for the engine.

Nothing here imports TensorFlow at module level: ``registry``, ``predictor``, ``features`` and ``xgb_model`` load
without it, and ``nets`` imports it only when a neural model is trained or loaded (5–9 s, ~650 MB). An XGBoost-only
setup never pays for TensorFlow.

    data.py        candles from the store, holes forward-filled / interpolated (rows in a hole are never samples)
    features.py    the feature matrix on the 5m decision grid, every value causal
    labels.py      direction at 5/15/30/60/240 min with a cost dead zone; reversal points from confirmed pivots
    scaling.py     min-max and z-score scalers fitted on training rows only
    splits.py      purged, embargoed walk-forward folds
    metrics.py     out-of-sample scores beside majority and persistence baselines; after-cost signal backtest
    xgb_model.py   XGBoost (native API) classifier, used for reversal points (and as a light direction model)
    nets.py        GRU (5–30 min) and LSTM (1–4 h) multi-horizon classifiers (TensorFlow/Keras, lazy import)
    ensemble.py    votes across horizons
    ood.py         dissimilarity index: predictions withheld on inputs far from the training data
    selection.py   gain and permutation importance, tracked across retrains; feature subsets per regime
    registry.py    user_data/models/<name>/<version>/ with checks on load; which version is active
    training.py    train + walk-forward evaluation + registration (what ``bsmart train`` and the worker run)
    predictor.py   Predictor.load_active(models_dir) → .predict(features) → Prediction (the engine's API)
    online.py      retraining schedule in a low-priority worker process; promotion only when better out of sample
"""
