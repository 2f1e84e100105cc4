"""A tiny GRU (multi-horizon heads) through the registry and predictor; online retraining with the promotion
gate; the scheduler's rhythm and its worker process; the two CLI commands."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np

from bot.cli import main
from trader.data.store import bundled_data_dir
from trader.ml.features import FEATURE_NAMES
from trader.ml.online import RetrainJobSpec, RetrainPolicy, RetrainScheduler, run_retrain
from trader.ml.predictor import Predictor
from trader.ml.registry import ModelRegistry
from trader.ml.training import MODEL_SPECS, candidate_rows

from .conftest import BTC, END, ETH, tiny_config


def test_gru_round_trip_and_single_sample_inference(gru_models, dataset) -> None:
    reg = ModelRegistry(gru_models)
    assert reg.active() == {"gru": "v0001", "xgb": "v0001"}
    meta = reg.meta("gru", "v0001")
    assert meta["heads"] == ["dir_5", "dir_15", "dir_30"] and meta["libraries"]["tensorflow"]
    assert meta["metrics"]["targets"]["dir_15"]["majority"]["log_loss"] > 0
    pred = Predictor.load_active(gru_models)
    assert pred.required_rows == 8
    rows = candidate_rows(dataset, MODEL_SPECS["gru"], tiny_config())
    answered = []
    for r in rows[-40:]:  # the guard may withhold an unusual bar (by design ~0.5 % of ordinary ones)
        out = pred.predict(dataset.X[int(r) - 7:int(r) + 1])
        if set(out.models) == {"gru", "xgb"}:
            answered.append(int(r))
    assert len(answered) >= 30
    r = answered[-1]
    out = pred.predict(dataset.X[r - 7:r + 1])
    p15 = np.asarray(out.probabilities["dir_15"])
    assert p15.shape == (3,) and abs(p15.sum() - 1) < 1e-6 and out.vote is not None
    assert set(out.baseline) == {"dir_5", "dir_15", "dir_30", "reversal"}
    # single-window path (tf.function) == batch path on the same window
    lm = pred.models[[m.name for m in pred.models].index("gru")]
    cols = [FEATURE_NAMES.index(f) for f in lm.features]
    Z = lm.scaler.transform(dataset.X[r - 7:r + 1][:, cols])
    batch = lm.model.model.predict_on_batch(Z[None])
    single = lm.model.predict_window(Z)
    np.testing.assert_allclose(single["dir_15"], np.asarray(batch["dir_15"])[0], rtol=1e-4, atol=1e-6)
    short = pred.predict(dataset.X[r - 3:r + 1])
    assert "needs 8 rows of history" in short.withheld["gru"]


def test_light_retrain_promotes_only_when_better(tmp_path, xgb_models) -> None:
    models = tmp_path / "m"
    shutil.copytree(xgb_models, models)
    pol = RetrainPolicy(light_window_days=10, holdout_hours=24, light_rounds=10, names=("xgb",))
    job = RetrainJobSpec("light", str(models), str(bundled_data_dir()), (BTC, ETH), pol, tiny_config(), end_ms=END)
    out = run_retrain(job)
    assert len(out) == 1 and "error" not in out[0], out
    d = out[0]
    assert d["version"] == "v0002" and d["active_version"] == "v0001"
    reg = ModelRegistry(models)
    meta = reg.meta("xgb", "v0002")
    assert meta["parent"] == "v0001" and meta["retrain"] == "light" and meta["promotion"]["reason"]
    assert meta["training"]["end_ms"] < d["holdout_start_ms"]  # the candidate never saw the holdout
    assert (reg.active()["xgb"] == "v0002") == d["promoted"]
    assert d["promoted"] == (d["candidate_log_loss"] < d["active_log_loss"])


def test_scheduler_rhythm_and_worker_process(tmp_path, xgb_models) -> None:
    models = tmp_path / "m"
    shutil.copytree(xgb_models, models)
    now = [1_000_000.0]
    pol = RetrainPolicy(light_every_s=3600, full_every_s=7 * 86400, light_window_days=10, light_rounds=5,
                        names=("xgb",))
    s = RetrainScheduler(models, bundled_data_dir(), (BTC,), pol, tiny_config(), clock=lambda: now[0])
    assert s.due() == "full"
    (models / "retrain_state.json").write_text(json.dumps({"last_full": now[0] - 100, "last_light": now[0] - 100}))
    assert s.due() is None
    now[0] += 3600
    assert s.due() == "light"
    t0 = time.monotonic()
    assert s.tick() == "light"
    assert time.monotonic() - t0 < 2.0  # the caller never waits for the training
    assert s.tick() is None  # one job at a time
    deadline = time.monotonic() + 120
    result = None
    while result is None and time.monotonic() < deadline:
        time.sleep(0.5)
        result = s.poll()
    assert result is not None and result["kind"] == "done", result
    assert result["results"][0]["name"] == "xgb" and "promoted" in result["results"][0]
    assert s.due() is None


def test_cli_models_list_activate_and_train(tmp_path, xgb_models, capsys) -> None:
    models = tmp_path / "m"
    shutil.copytree(xgb_models, models)
    assert main(["models", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "* xgb" in out and "v0001" in out and "reversal" in out
    assert main(["models", "--models-dir", str(models), "activate", "xgb", "v0042"]) == 1
    assert "refused" in capsys.readouterr().err
    assert main(["models", "--models-dir", str(models), "deactivate", "xgb"]) == 0
    assert ModelRegistry(models).active() == {}
    assert main(["models", "--models-dir", str(models), "activate", "xgb", "v0001"]) == 0
    rc = main(["train", "--pairs", "BTC", "--timerange", "20250505-20250515", "--model", "xgb", "--folds", "2",
               "--models-dir", str(models), "--activate", "never"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "xgb v0002: out of sample, 2 purged walk-forward folds" in out
    assert "majority" in out and "persistence" in out and "seed target (reversal accuracy > 65 %)" in out
    assert ModelRegistry(models).active() == {"xgb": "v0001"}
