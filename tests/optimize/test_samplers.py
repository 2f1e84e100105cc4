"""Each sampler runs on real backtests, explores the space, and (on a known surface) improves."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from trader.backtest.runner import parse_timerange
from trader.optimize.samplers import make_sampler
from trader.optimize.spaces import IntRange, grid_points, select_dimensions, suggest
from trader.optimize.study import HyperoptRequest, run_hyperopt
from trader.strategy.reference import RsiBollingerStrategy


class TinyGrid(RsiBollingerStrategy):
    """Two values each of two parameters: a grid of four points."""

    spaces = {"buy": (IntRange("rsi_period", 7, 14, step=7), IntRange("bb_period", 14, 22, step=8))}


def _request(**kw) -> HyperoptRequest:
    s, e = parse_timerange("20250504-20250514")
    base = dict(pairs=("BTC",), timeframe="15m", start_ms=s, end_ms=e, spaces=("buy", "stoploss"), epochs=12,
                folds=1, seed=7)
    base.update(kw)
    return HyperoptRequest(**base)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_sampler_runs_real_backtests_and_explores(sampler: str, tmp_path: Path) -> None:
    steps = []
    url = f"sqlite:///{tmp_path / 'ho.sqlite'}"
    result = run_hyperopt(_request(sampler=sampler, storage=url), progress=steps.append)
    (fold,) = result.folds
    assert fold.trials == fold.new_trials == 12
    assert fold.is_metrics["trades"] >= 1 and "total_return" in fold.oos_metrics
    dims = select_dimensions(RsiBollingerStrategy, ["buy", "stoploss"])
    assert set(fold.best_params) == {d.name for d in dims}
    for d in dims:
        assert fold.best_params[d.name] in d.values()
    # Explores: the trials are (almost) all different points, and every one ran a real backtest.
    trials = optuna.load_study(study_name=fold.study_name, storage=url).trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) >= 10
    assert all(t.user_attrs["metrics"]["days"] > 5 for t in trials)
    done = [p.trials_done for p in steps if p.stage == "optimising"]
    assert done == list(range(1, 13))  # progress after every trial, in order
    assert steps[-1].stage == "done" and steps[-1].fraction == 1.0


def test_grid_covers_the_tiny_grid_then_stops() -> None:
    result = run_hyperopt(_request(strategy=TinyGrid, sampler="grid", spaces=("buy",), epochs=10))
    (fold,) = result.folds
    assert fold.trials == 4  # not 10: the grid has four points
    assert fold.best_params in grid_points(select_dimensions(TinyGrid, ["buy"]))


def _bowl(trial: optuna.Trial, dims) -> float:
    # A known surface over the reference's buy space, best at rsi_low 25, rsi_high 75, bb_dev 2.0, bb_period 22.
    p = suggest(trial, dims)
    return -((p["rsi_low"] - 25) ** 2 + (p["rsi_high"] - 75) ** 2 + 100 * (p["bb_dev"] - 2.0) ** 2
             + (p["bb_period"] - 22) ** 2 + (p["rsi_period"] - 14) ** 2)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_sampler_improves_on_a_known_surface(sampler: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dims = select_dimensions(RsiBollingerStrategy, ["buy"])
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, dims, seed=11, epochs=120))
    study.optimize(lambda t: _bowl(t, dims), n_trials=120)
    values = [t.value for t in study.trials]
    first, last = sum(values[:20]) / 20, sum(values[-20:]) / 20
    # Seeded random search stays around −180..−270 on average here; a learning sampler's last trials crowd near the
    # optimum (0), well above its own random start, and it finds a point within one step of the optimum.
    assert last > -150 and last > 0.7 * first
    assert study.best_value >= -25
