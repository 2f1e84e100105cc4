"""The models in the running system: the registry's state for /status and /models, the fusion adapter over the
predictor (fresh rows only; abstains on stale ones), installing it only when a model is active, and scheduled
retraining read from the config (off by default)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.main_job import install_ml, ml_scheduler
from tests.ml.conftest import BTC, END
from trader.config.loader import load_settings
from trader.data.store import bundled_data_dir
from trader.jobs.data import span
from trader.ml.features import FEATURE_NAMES
from trader.ml.live import PredictorProvider, Rows, StoreRows, install_provider, ml_state, signed_score
from trader.ml.predictor import Predictor
from trader.strategy import fusion


@pytest.fixture(autouse=True)
def no_provider_left():
    yield
    fusion.set_ml_provider(None)


def settings_for(write_config, tmp_path: Path, **extra):
    return load_settings(write_config({"user_data_dir": str(tmp_path / "ud"), **extra}), environ={},
                         dotenv_path=None)


def test_retraining_is_off_by_default_and_read_from_the_config(write_config, tmp_path: Path) -> None:
    off = settings_for(write_config, tmp_path)
    assert off.ml.retrain is False and ml_scheduler(off, ["BTC/USDT:USDT"]) is None
    on = settings_for(write_config, tmp_path, ml={"retrain": True, "light_every_s": 7200, "full_every_s": 172800})
    sched = ml_scheduler(on, ["BTC/USDT:USDT"])
    assert sched is not None and sched.policy.light_every_s == 7200 and sched.policy.full_every_s == 172800
    assert sched.models_dir == on.models_dir and sched.pairs == ("BTC/USDT:USDT",) and not sched.running


@pytest.mark.parametrize(("ml", "expected"), [
    ({"retrain": "yes"}, "ml.retrain: Input should be a valid boolean"),
    ({"light_every_s": 5}, "ml.light_every_s: Input should be greater than or equal to 600"),
    ({"retrian": True}, "ml.retrian: unknown key"),
])
def test_bad_ml_config_is_named(write_config, tmp_path: Path, ml: dict, expected: str) -> None:
    from trader.config.loader import ConfigError

    with pytest.raises(ConfigError) as failed:
        settings_for(write_config, tmp_path, ml=ml)
    assert expected in str(failed.value)


def test_state_of_an_empty_and_a_trained_registry(tmp_path: Path, xgb_models: Path) -> None:
    empty = ml_state(tmp_path / "none")
    assert not empty.on and empty.active == () and empty.versions == 0
    state = ml_state(xgb_models)
    assert state.on and [m.name for m in state.usable] == ["xgb"]
    assert "reversal" in state.usable[0].summary and state.usable[0].age_s(state.usable[0].created_ms) == 0


def test_a_changed_model_is_reported_not_used(tmp_path: Path, xgb_models: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(xgb_models, root)
    version = json.loads((root / "active.json").read_text())["xgb"]
    (root / "xgb" / version / "scaler.json").write_text("{}")
    (m,) = ml_state(root).active
    assert not m.usable and "hash mismatch" in m.reason
    assert install_provider(root, bundled_data_dir()) is None and fusion.get_ml_provider() is None


def test_nothing_is_installed_without_an_active_model(write_config, tmp_path: Path) -> None:
    assert install_ml(settings_for(write_config, tmp_path)) is None
    assert fusion.get_ml_provider() is None


def test_the_adapter_predicts_from_fresh_store_rows_and_abstains_on_stale_ones(xgb_models: Path) -> None:
    provider = install_provider(xgb_models, bundled_data_dir())
    assert provider is not None and fusion.get_ml_provider() is provider
    at = END - END % 300_000
    pred = provider.predict(BTC, at, {"close": 1.0})
    assert pred is not None and pred.direction in (1, -1) and 0.5 <= pred.probability <= 1.0
    assert pred.model.startswith("xgb v")
    stored_end = span(bundled_data_dir(), BTC, "1m").end_ms
    assert provider.predict(BTC, stored_end - stored_end % 300_000 + 86_400_000, {}) is None
    assert "not being updated" in provider.last_reason[BTC]
    assert provider.predict("DOGE/USDT:USDT", at, {}) is None


class _FakePredictor:
    required_rows = 2

    def __init__(self, p):
        self.p = p

    def predict(self, rows, *, at_ms=None, now_ms=None):
        assert len(rows) == 2
        return self.p


def test_the_signed_score_is_fusions_vote() -> None:
    from trader.ml.ensemble import Vote
    from trader.ml.predictor import Prediction

    rows = Rows(pd.DataFrame(np.zeros((3, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES)),
                np.array([0, 300_000, 600_000], dtype="int64"))
    up = Prediction(600_000, {"dir_15": (0.1, 0.3, 0.6)}, {}, {}, Vote(1, 0.5), models={"gru": "v0001"})
    provider = PredictorProvider(_FakePredictor(up), lambda pair, at: rows)
    got = provider.predict(BTC, 600_000, {})
    assert (got.direction, got.probability) == (1, 0.75) and signed_score(up) == 0.5
    top = Prediction(600_000, {"reversal": (0.5, 0.1, 0.4)}, {}, {}, None)
    assert provider.__class__(_FakePredictor(top), lambda p, a: rows).predict(BTC, 600_000, {}).direction == -1
    withheld = Prediction(600_000, {}, {}, {}, None, {"xgb": "out of distribution"})
    quiet = PredictorProvider(_FakePredictor(withheld), lambda p, a: rows)
    assert quiet.predict(BTC, 600_000, {}) is None and "out of distribution" in quiet.last_reason[BTC]


def test_store_rows_are_cached_per_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    rows = StoreRows(bundled_data_dir())
    monkeypatch.setattr(rows, "_build", lambda pair, end: calls.append((pair, end)) or None)
    rows(BTC, 600_000)
    rows(BTC, 600_000 + 60_000)  # the same 5m bar
    rows(BTC, 900_000)
    assert calls == [(BTC, 600_000), (BTC, 900_000)]


def test_predictor_loads_what_the_provider_uses(xgb_models: Path) -> None:
    assert Predictor.load_active(xgb_models).versions == {m.name: m.version for m in ml_state(xgb_models).usable}
