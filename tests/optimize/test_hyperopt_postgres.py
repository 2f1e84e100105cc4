"""README's multi-machine recipe, exercised: two independent ``bsmart hyperopt`` processes (two "machines", one
``--seed`` each) share one study on a real PostgreSQL server through ``postgresql+psycopg://``.

The server comes from ``BSMART_TEST_POSTGRES_URL`` (.ci/run starts Debian's PostgreSQL and sets it); without it the
test skips locally and fails under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from tests.monitoring.external import require

pytestmark = [pytest.mark.slow, pytest.mark.integration]
URL_ENV = "BSMART_TEST_POSTGRES_URL"
ARGS = ["hyperopt", "--pairs", "BTC", "--timeframe", "15m", "--timerange", "20250504-20250514", "--folds", "2",
        "--spaces", "buy", "roi", "--epochs", "4", "--sampler", "tpe"]


def _server_url() -> str:
    url = os.environ.get(URL_ENV, "")
    require(bool(url), f"a PostgreSQL server ({URL_ENV})")
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except sqlalchemy.exc.OperationalError as exc:
        require(False, f"the PostgreSQL server at {URL_ENV} ({exc.orig})")
    return url


def test_two_machines_share_one_postgresql_study(isolated: Path) -> None:
    url = _server_url()
    assert url.startswith("postgresql+psycopg://")  # the driver README tells each machine to install
    study = f"ci-{uuid.uuid4().hex[:8]}"  # reruns against a kept server never meet an old study
    cmd = [sys.executable, "-m", "bot.cli", *ARGS, "--storage", url, "--study-name", study]
    procs = [subprocess.Popen([*cmd, "--seed", str(seed)], cwd=isolated, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    password = sqlalchemy.make_url(url).password
    assert password and all(password not in out + err for out, err in outs)  # the URL is printed with ***
    try:
        for k in (0, 1):
            trials = optuna.load_study(study_name=f"{study}.fold{k}", storage=url).trials
            assert len(trials) == 8  # both machines' 4 trials, in one study
            assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
            by_worker: dict[int, int] = {}
            for trial in trials:
                by_worker[trial.user_attrs["pid"]] = by_worker.get(trial.user_attrs["pid"], 0) + 1
            assert sorted(by_worker.values()) == [4, 4] and set(by_worker) == {p.pid for p in procs}
            assert len({tuple(sorted(t.params.items())) for t in trials}) >= 6  # different seeds, different points
        assert all("aggregate out of sample" in out for out, _ in outs)
    finally:
        for k in (0, 1):
            optuna.delete_study(study_name=f"{study}.fold{k}", storage=url)
