"""The study runner: cancel hook, resume rules, storage URLs, the JSON export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from trader.backtest.runner import parse_timerange
from trader.optimize.study import HyperoptRequest, check_storage_url, plan_hyperopt, run_hyperopt


def _request(**kw) -> HyperoptRequest:
    s, e = parse_timerange("20250504-20250514")
    base = dict(pairs=("BTC",), timeframe="15m", start_ms=s, end_ms=e, spaces=("buy",), epochs=6, folds=2, seed=3)
    base.update(kw)
    return HyperoptRequest(**base)


def test_cancel_stops_after_the_running_trial() -> None:
    seen = []

    def cancel() -> bool:
        return len(seen) >= 3

    result = run_hyperopt(_request(epochs=50), progress=seen.append, cancel=cancel)
    assert result.cancelled and result.folds == []
    assert [p.trials_done for p in seen] == [1, 2, 3]
    assert "cancelled" in result.table()


def test_resume_adds_trials_and_refuses_other_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ho.sqlite'}"
    first = run_hyperopt(_request(storage=url, study_name="s1"))
    again = run_hyperopt(_request(storage=url, study_name="s1", sampler="nsga2"))  # a sampler may change
    assert [f.trials for f in first.folds] == [6, 6]
    assert [(f.trials, f.new_trials) for f in again.folds] == [(12, 6), (12, 6)]
    assert all(b.is_score >= a.is_score for a, b in zip(first.folds, again.folds, strict=True))
    with pytest.raises(ValueError, match="exists with other settings.*loss"):
        run_hyperopt(_request(storage=url, study_name="s1", loss="sortino"))


def test_default_study_name_follows_the_settings() -> None:
    a, b = plan_hyperopt(_request()), plan_hyperopt(_request(sampler="grid", epochs=3))
    c = plan_hyperopt(_request(loss="calmar"))
    assert a.study_name == b.study_name != c.study_name
    assert a.study_name.startswith("rsi_bollinger-15m-sharpe-")


@pytest.mark.parametrize("url, message", [
    ("nonsense", "not a database URL"),
    ("redis://localhost/0", "not supported"),
    ("sqlite://", "needs a file"),
    ("sqlite:////no/such/dir/x.sqlite", "does not exist"),
    ("mysql+pymysql://u:p@127.0.0.1/db", "driver missing"),  # psycopg is installed (dev extra); PyMySQL is not
])
def test_bad_storage_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_storage_url(url)


def test_json_export_is_strict_json(tmp_path: Path) -> None:
    result = run_hyperopt(_request(spaces=("roi",), epochs=3, folds=1))
    out = result.write_json(tmp_path)
    doc = json.loads(out.read_text())
    assert out.parent.name == result.study_name
    (fold,) = doc["folds"]
    assert fold["fold"]["train_end_ms"] == fold["fold"]["test_start_ms"]
    assert set(fold["best_params"]) == {"tp_moves[0]", "tp_moves[1]", "tp_moves[2]"}
    moves = fold["strategy_params"]["tp_moves"]
    assert fold["tp_return_on_margin"] == pytest.approx([m * 25 for m in moves])
    assert doc["aggregate"]["oos_score"] == pytest.approx(fold["out_of_sample"]["score"])
    assert doc["best_params"] == fold["strategy_params"]


def test_cancel_reaches_worker_processes(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'ho.sqlite'}"
    seen = []
    t0 = time.perf_counter()
    result = run_hyperopt(_request(epochs=400, jobs=2, storage=url, study_name="c"), progress=seen.append,
                          cancel=lambda: any(p.trials_done >= 2 for p in seen))
    assert result.cancelled and result.folds == []
    trials = optuna.load_study(study_name="c.fold0", storage=url).trials
    # Stopped within a poll interval and one running trial per worker, far short of the 400 asked for.
    assert 2 <= len(trials) < 60
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert time.perf_counter() - t0 < 60
