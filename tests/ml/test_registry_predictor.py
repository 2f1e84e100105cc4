"""Registry round trip; refusals (features, schema, library versions, tampering, expiry); the XGBoost-only
predictor, the OOD guard, and TensorFlow staying out of processes that do not need it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trader.ml.features import FEATURE_NAMES
from trader.ml.predictor import Predictor, status
from trader.ml.registry import ModelError, ModelMismatch, ModelRegistry, sha256_file
from trader.ml.training import MODEL_SPECS, candidate_rows

from .conftest import tiny_config


@pytest.fixture
def models(tmp_path, xgb_models) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(xgb_models, dst)
    return dst


def test_round_trip_predicts_the_same(models, dataset) -> None:
    reg = ModelRegistry(models)
    assert reg.active() == {"xgb": "v0001"}
    lm = reg.load("xgb")
    meta = lm.meta
    for key in ("features", "schema"):
        assert key in json.loads((models / "xgb" / "v0001" / "features.json").read_text())
    assert meta["training"]["pairs"] == dataset.pairs and meta["libraries"]["xgboost"]
    assert len(meta["hash"]) == 64 and meta["metrics"]["targets"]["reversal"]["n"] > 0
    assert set(meta["regime_features"]) <= {"ranging", "trending", "volatile", "breakout"}
    rows = candidate_rows(dataset, MODEL_SPECS["xgb"], tiny_config())[-50:]
    pred = Predictor.load_active(models)
    out = [pred.predict(dataset.X[r:r + 1]).probabilities.get("reversal") for r in rows]
    direct = lm.model.predict_proba(lm.scaler.transform(dataset.X[np.ix_(rows, [FEATURE_NAMES.index(f) for f in lm.features])]))
    prior = np.asarray(meta["priors"]["reversal"])
    expect = direct * prior / (direct * prior).sum(axis=1, keepdims=True)
    got = np.array([o if o is not None else (np.nan,) * 3 for o in out])
    ok = ~np.isnan(got[:, 0])
    assert ok.sum() >= 40  # a few may be withheld by the OOD guard (about 0.5 % by construction)
    np.testing.assert_allclose(got[ok], expect[ok], rtol=1e-5)


def test_no_active_model_means_no_predictor(tmp_path) -> None:
    assert Predictor.load_active(tmp_path / "nothing") is None


def test_missing_feature_is_refused(models) -> None:
    reg = ModelRegistry(models)
    needed = reg.load("xgb").features[0]
    fewer = tuple(f for f in FEATURE_NAMES if f != needed)
    with pytest.raises(ModelMismatch, match=f"needs features.*{needed}.*bsmart train --model xgb"):
        reg.load("xgb", features=fewer)
    assert Predictor.load_active(models, features=fewer) is None


def test_other_library_version_is_refused(models) -> None:
    reg = ModelRegistry(models)
    meta = reg.meta("xgb", "v0001")
    reg.update_meta("xgb", "v0001", libraries={**meta["libraries"], "xgboost": "1.7.6"})
    with pytest.raises(ModelMismatch, match=r"saved with xgboost 1\.7\.6 but xgboost 3\.\d+\.\d+ .*install xgboost==1\.7\.\*"):
        reg.load("xgb")
    with pytest.raises(ModelMismatch):
        reg.activate("xgb", "v0001")
    assert status(models)[0]["usable"] is False


def test_changed_feature_schema_and_tampering_are_refused(models) -> None:
    d = models / "xgb" / "v0001"
    f = json.loads((d / "features.json").read_text())
    (d / "features.json").write_text(json.dumps({**f, "schema": "ml-features-0"}))
    with pytest.raises(ModelError, match="hash mismatch"):
        ModelRegistry(models).load("xgb")
    (d / "features.json").write_text(json.dumps(f))  # the registry writes exactly json.dumps(...)
    ModelRegistry(models).load("xgb")
    # a model saved under another feature schema (hash consistent) is refused by name
    reg = ModelRegistry(models)
    (d / "features.json").write_text(json.dumps({**f, "schema": "ml-features-0"}))
    meta = reg.meta("xgb", "v0001")
    reg.update_meta("xgb", "v0001", files={**meta["files"], "features.json": sha256_file(d / "features.json")})
    with pytest.raises(ModelMismatch, match="feature schema 'ml-features-0'"):
        reg.load("xgb")


def test_expired_model_is_not_used(models) -> None:
    reg = ModelRegistry(models)
    reg.update_meta("xgb", "v0001", expires_ms=int(time.time() * 1000) - 1)
    assert Predictor.load_active(models) is None
    assert status(models)[0]["reason"] == "expired"
    assert "expired" in reg.rows()[0] and reg.rows()[0]["expired"] is True


def test_out_of_distribution_input_is_withheld_with_reason(models, dataset) -> None:
    pred = Predictor.load_active(models)
    row = dataset.X[candidate_rows(dataset, MODEL_SPECS["xgb"], tiny_config())[-1]].copy()
    normal = pred.predict(row)
    assert normal.withheld_reason is None and normal.models == {"xgb": "v0001"}
    row[FEATURE_NAMES.index("rv_48")] *= 60.0
    row[FEATURE_NAMES.index("natr_5m")] *= 60.0
    row[FEATURE_NAMES.index("ret_12")] = -0.4
    weird = pred.predict(row)
    assert weird.probabilities == {}
    assert "far from the training data" in weird.withheld_reason and "dissimilarity" in weird.withheld_reason
    assert weird.dissimilarity["xgb"] > normal.dissimilarity["xgb"]


def test_versions_and_activation(models, dataset) -> None:
    from trader.ml.training import train_models

    reg = ModelRegistry(models)
    res = train_models(dataset, ["xgb"], tiny_config(folds=0), reg, activate="if-better")
    assert res[0].version == "v0002" and not res[0].activated
    assert reg.active()["xgb"] == "v0001"
    reg.activate("xgb", "v0002")
    assert reg.active()["xgb"] == "v0002"
    assert [r["active"] for r in reg.rows()] == [False, True]
    hist = json.loads((models / "xgb" / "importance.json").read_text())
    assert [h["version"] for h in hist] == ["v0001", "v0002"] and hist[0]["gain"] and hist[0]["permutation"]
    with pytest.raises(ModelError, match="no model xgb v0009"):
        reg.activate("xgb", "v0009")


IMPORT_CHECK = """
import sys
from trader.ml.predictor import Predictor
from trader.ml.registry import ModelRegistry
import numpy as np
p = Predictor.load_active(sys.argv[1])
out = p.predict(np.zeros((1, {n})))
assert p is not None and out.models == {{"xgb": "v0001"}}, out
import bot.cli
bot.cli.build_parser().format_help()
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_xgb_only_setup_and_help_never_import_tensorflow(models) -> None:
    code = IMPORT_CHECK.format(n=len(FEATURE_NAMES))
    out = subprocess.run([sys.executable, "-c", code, str(models)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    helped = subprocess.run([sys.executable, "-c", "import sys\nfrom bot.cli import main\ntry:\n main(['--help'])\n"
                             "except SystemExit:\n pass\nprint('tensorflow' in sys.modules)"],
                            capture_output=True, text=True, timeout=120)
    assert helped.stdout.strip().endswith("False"), helped.stderr
