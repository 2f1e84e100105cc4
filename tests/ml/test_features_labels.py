"""No lookahead: features at t do not change when the future is cut or rewritten; labels become known only after
their horizon; holes are filled without letting invented bars become samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.analysis.analyzer import analyze
from trader.data.store import bundled_data_dir, load_candles, load_funding
from trader.ml.data import GapPolicy, fill_gaps
from trader.ml.features import FEATURE_NAMES, build_features
from trader.ml.labels import BOTTOM, DOWN, FLAT, TOP, UP, LabelParams, direction_labels, reversal_labels

from .conftest import BTC

DAY = 86_400_000


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles(bundled_data_dir(), BTC, "1m", start_ms=1746403200000, end_ms=1746403200000 + 9 * DAY)


@pytest.fixture(scope="module")
def funding() -> pd.DataFrame:
    return load_funding(bundled_data_dir(), BTC)


def _features(c: pd.DataFrame, funding: pd.DataFrame):
    filled = fill_gaps(c, "1m")
    a = analyze(BTC, filled.drop(columns=["filled"]), funding=funding)
    return build_features(a, filled.loc[filled["filled"], "timestamp"].to_numpy())


def test_feature_list_is_complete_and_finite_where_known(candles, funding) -> None:
    fs = _features(candles, funding)
    assert list(fs.X.columns) == list(FEATURE_NAMES)
    ok = fs.X[fs.sample_ok]
    assert len(ok) > 1000
    assert np.isfinite(ok[["ret_1", "ret_48", "rv_48", "mom_rsi_5m", "hour_sin", "dow_cos"]].to_numpy()).all()
    assert ok["has_funding"].eq(1).all() and ok["has_book"].eq(0).all()  # no book recorded: absent, not zero
    # cyclical time: sin² + cos² = 1
    np.testing.assert_allclose(ok["hour_sin"] ** 2 + ok["hour_cos"] ** 2, 1.0)


@pytest.mark.parametrize("cut_days", [3.3, 5.71, 8.0])
def test_features_do_not_look_ahead(candles, funding, cut_days) -> None:
    full = _features(candles, funding)
    cut_ms = int(candles["timestamp"].iloc[0] + cut_days * DAY)
    # what was known at cut_ms: candles that closed by then, settlements stamped up to then
    part = _features(candles[candles["timestamp"] < cut_ms], funding[funding["timestamp"] <= cut_ms])
    n = len(part)
    assert n > 100
    np.testing.assert_array_equal(part.close_ms, full.close_ms[:n])
    pd.testing.assert_frame_equal(part.X, full.X.iloc[:n].reset_index(drop=True), check_exact=False, rtol=1e-9,
                                  atol=1e-12)


def test_rewriting_the_future_changes_no_feature_of_the_past(candles, funding) -> None:
    """Labels read the future; features must not: scramble every price after t and compare rows ≤ t."""
    t_ms = int(candles["timestamp"].iloc[0] + 6 * DAY)
    fake = candles.copy()
    after = fake["timestamp"] >= t_ms
    rng = np.random.default_rng(0)
    scale = np.exp(np.cumsum(rng.normal(0, 0.003, after.sum())))
    for col in ("open", "high", "low", "close"):
        fake.loc[after, col] = fake.loc[after, col] * scale
    fake.loc[after, "volume"] *= 7.0
    a, b = _features(candles, funding), _features(fake, funding)
    known = a.close_ms <= t_ms
    pd.testing.assert_frame_equal(a.X[known], b.X[known], check_exact=False, rtol=1e-9, atol=1e-12)
    # ... while the labels of those rows may change (they read the future) — the point of the test is the split
    la, lb = direction_labels(a)[240], direction_labels(b)[240]
    assert (la[known] != lb[known]).any()


def test_direction_labels_dead_zone_and_horizon() -> None:
    c = np.array([100.0, 100.05, 100.5, 99.0, 99.0, 99.0])
    fs = _toy(c)
    lp = LabelParams(taker_fee=0.0005, slippage=0.0)  # round trip 0.1 %
    y = direction_labels(fs, (5,), lp)[5]
    assert list(y) == [FLAT, UP, DOWN, FLAT, FLAT, -1]  # +0.05 % is inside the dead zone; the last is unknown


def test_reversal_labels_need_confirmation() -> None:
    c = np.array([10, 9, 8, 7, 8, 9, 10, 11, 10, 9, 8, 8.5, 9.0, 9.5], dtype=float)
    fs = _toy(c)
    y = reversal_labels(fs, LabelParams(pivot_bars=3, min_move=0.01))
    assert y[3] == BOTTOM and y[7] == TOP
    assert (y[-3:] == -1).all() and (y[:3] == -1).all()  # not yet confirmed / no left side
    # cutting the confirmation bars makes the pivot unknown, not a different answer
    y_cut = reversal_labels(_toy(c[:9]), LabelParams(pivot_bars=3, min_move=0.01))
    assert y_cut[3] == BOTTOM and y_cut[7] == -1


def test_fill_gaps_ffill_interpolate_split() -> None:
    ts = np.array([0, 1, 2, 4, 5, 9, 10, 60, 61]) * 60_000  # holes: 1 bar, 3 bars, 49 bars
    df = pd.DataFrame({"timestamp": ts, "open": np.arange(9.0) + 100, "high": np.arange(9.0) + 101,
                       "low": np.arange(9.0) + 99, "close": np.arange(9.0) + 100, "volume": 1.0})
    out = fill_gaps(df, "1m", GapPolicy(ffill_max=2, interp_max=30))
    assert list(out.loc[out["filled"], "timestamp"] // 60_000) == [3, 6, 7, 8]
    assert out.loc[out["timestamp"] == 3 * 60_000, "close"].item() == 102.0  # forward-filled
    interp = out.loc[out["timestamp"].isin([6 * 60_000, 7 * 60_000, 8 * 60_000]), "close"].to_numpy()
    np.testing.assert_allclose(interp, 104 + (105 - 104) * np.array([1, 2, 3]) / 4)  # between close 104, open 105
    assert not out["timestamp"].between(11 * 60_000, 59 * 60_000).any()  # a long hole stays a hole
    assert out.loc[out["filled"], "volume"].eq(0).all()


def test_invented_bars_are_never_samples_or_label_ends(candles, funding) -> None:
    c = candles.drop(index=range(3000, 3012)).reset_index(drop=True)  # a 12-minute hole → interpolated
    fs = _features(c, funding)
    hole = (fs.close_ms > int(candles["timestamp"].iloc[3000])) & (fs.close_ms <= int(candles["timestamp"].iloc[3012]) + 300_000)
    assert hole.any() and not fs.sample_ok[hole].any() and not fs.real[hole].all()
    y = direction_labels(fs, (15,))[15]
    ends_in_hole = np.flatnonzero(~fs.real) - 3
    assert (y[ends_in_hole[ends_in_hole >= 0]] == -1).all()


def _toy(close: np.ndarray):
    from trader.ml.features import FeatureSet

    n = len(close)
    return FeatureSet("X", np.arange(n, dtype="int64") * 300_000, close, close.copy(), close.copy(),
                      pd.DataFrame(index=range(n)), np.full(n, "unknown", dtype=object), np.zeros(n, "int64"),
                      np.arange(n), np.ones(n, bool), np.ones(n, bool))
