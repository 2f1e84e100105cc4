"""``bsmart hyperopt`` end to end: worker processes on an SQLite study, resuming it, and refusing bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from bot.cli import main

ARGS = ["hyperopt", "--pairs", "BTC", "--timeframe", "15m", "--timerange", "20250504-20250514", "--folds", "2",
        "--spaces", "buy", "roi", "--epochs", "4"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_two_workers_on_sqlite_then_resume(isolated: Path, capsys) -> None:
    storage = f"sqlite:///{isolated / 'ho.sqlite'}"
    args = [*ARGS, "--jobs", "2", "--storage", storage, "--study-name", "cli", "--sampler", "tpe"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "aggregate out of sample" in out and "take-profit tiers as return on margin at 25x" in out
    assert main(args) == 0
    exports = sorted((isolated / "user_data" / "hyperopt_results" / "cli").glob("*.json"))
    assert len(exports) == 2
    first, second = (json.loads(p.read_text()) for p in exports)
    assert [(f["trials"], f["new_trials"]) for f in first["folds"]] == [(4, 4), (4, 4)]
    assert [(f["trials"], f["new_trials"]) for f in second["folds"]] == [(8, 4), (8, 4)]
    assert second["jobs"] == 2 and second["storage"] == storage
    for k in (0, 1):
        trials = optuna.load_study(study_name=f"cli.fold{k}", storage=storage).trials
        assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert all(t.user_attrs["metrics"]["days"] > 3 for t in trials)  # each trial ran a real backtest
        # Each run's share went to two worker processes (not this one), 2 trials each.
        for run in (trials[:4], trials[4:]):
            pids = [t.user_attrs["pid"] for t in sorted(run, key=lambda t: t.number)]
            assert len(set(pids)) == 2 and os.getpid() not in pids


@pytest.mark.parametrize("extra, message", [
    (["--spaces", "buy", "nope"], "unknown space"),
    (["--epochs", "0"], "epochs must be > 0"),
    (["--epochs", "-3"], "epochs must be > 0"),
    (["--storage", "not a url"], "not a database URL"),
    (["--storage", "ftp://host/x"], "not supported"),
    (["--storage", "sqlite:///missing/dir/ho.sqlite"], "does not exist"),
    (["--sampler", "random"], "unknown sampler"),
    (["--loss", "omega"], "unknown loss"),
    (["--jobs", "0"], "jobs must be"),
    (["--folds", "9", "--train-days", "9"], "too short"),
])
def test_bad_arguments_exit_2_and_write_nothing(isolated: Path, capsys, extra: list[str], message: str) -> None:
    before = _files(isolated)
    assert main([*ARGS, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert _files(isolated) == before


def test_two_machines_share_one_study(isolated: Path) -> None:
    """Two independent ``bsmart hyperopt`` processes on one storage (as two machines on one PostgreSQL would)."""
    storage = f"sqlite:///{isolated / 'shared.sqlite'}"
    cmd = [sys.executable, "-m", "bot.cli", *ARGS, "--storage", storage, "--study-name", "shared"]
    procs = [subprocess.Popen([*cmd, "--seed", str(seed)], cwd=isolated, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    for k in (0, 1):
        trials = optuna.load_study(study_name=f"shared.fold{k}", storage=storage).trials
        assert len(trials) == 8  # both machines' 4 trials, in one study
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert len({tuple(sorted(t.params.items())) for t in trials}) >= 6  # different seeds: different points


def test_storage_that_cannot_be_opened_exits_2(isolated: Path, capsys) -> None:
    (isolated / "adir").mkdir()  # a well-formed SQLite URL whose "file" is a directory
    before = _files(isolated)
    assert main([*ARGS, "--storage", f"sqlite:///{isolated / 'adir'}"]) == 2
    assert "cannot open storage" in capsys.readouterr().err
    assert _files(isolated) == before
