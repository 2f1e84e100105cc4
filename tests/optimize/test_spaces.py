"""Declared spaces → grids, strategy params and validation."""

from __future__ import annotations

import itertools

import optuna
import pytest

from trader.optimize.samplers import make_sampler
from trader.optimize.spaces import (
    Categorical,
    FloatRange,
    IntRange,
    grid,
    grid_points,
    grid_size,
    select_dimensions,
    suggest,
    to_strategy_params,
)
from trader.strategy.reference import RsiBollingerStrategy


class _BadSpaces(RsiBollingerStrategy):
    spaces = {"buy": (IntRange("no_such_param", 1, 3),), "roi": (FloatRange("tp_moves[5]", 0.01, 0.02, 0.01),)}


def test_range_values_by_hand() -> None:
    assert IntRange("n", 7, 21, step=7).values() == [7, 14, 21]
    assert FloatRange("x", 0.005, 0.01, step=0.0025).values() == [0.005, 0.0075, 0.01]
    assert FloatRange("x", 1.5, 2.5, step=0.5).values() == [1.5, 2.0, 2.5]
    assert FloatRange("x", 1.0, 1.9, step=0.5).values() == [1.0, 1.5]  # high not on the step: left out
    assert Categorical("b", (True, False)).values() == [True, False]
    with pytest.raises(ValueError):
        IntRange("n", 5, 1)
    with pytest.raises(ValueError):
        FloatRange("x", 0.0, 1.0, step=0.0)


def test_grid_is_the_full_product_of_the_declared_values() -> None:
    dims = select_dimensions(RsiBollingerStrategy, ["buy", "sell"])
    # buy: rsi_period 7/14/21, rsi_low 20..40 by 5, rsi_high 60..80 by 5, bb_period 14/22/30, bb_dev 1.5/2/2.5;
    # sell: time_stop_bars 30/60/90/120, breakeven yes/no.
    assert grid_size(dims) == 3 * 5 * 5 * 3 * 3 * 4 * 2 == 5400
    points = grid_points(dims)
    assert len(points) == 5400
    assert len({tuple(p.values()) for p in points}) == 5400
    g = grid(dims)
    assert set(g) == {"rsi_period", "rsi_low", "rsi_high", "bb_period", "bb_dev", "time_stop_bars", "breakeven"}
    assert set(itertools.product(*g.values())) == {tuple(p.values()) for p in points}


def test_every_grid_point_is_accepted_by_the_strategy() -> None:
    dims = select_dimensions(RsiBollingerStrategy, ["stoploss", "roi"])
    for point in grid_points(dims):
        params = RsiBollingerStrategy.param_values(to_strategy_params(RsiBollingerStrategy, point))
        moves = params["tp_moves"]
        assert len(moves) == 3 and moves[0] < moves[1] < moves[2]  # declared ranges keep tiers ordered


def test_indexed_dimensions_fold_into_the_tuple_parameter() -> None:
    out = to_strategy_params(RsiBollingerStrategy, {"tp_moves[1]": 0.025, "rsi_low": 25.0})
    assert out == {"tp_moves": (0.008, 0.025, 0.05), "rsi_low": 25.0}
    out = to_strategy_params(RsiBollingerStrategy, {"tp_moves[0]": 0.005, "tp_moves[2]": 0.1})
    assert out == {"tp_moves": (0.005, 0.02, 0.1)}


def test_space_selection_errors() -> None:
    with pytest.raises(ValueError, match="unknown space.*nope.*declared: buy, sell, stoploss, roi"):
        select_dimensions(RsiBollingerStrategy, ["buy", "nope"])
    with pytest.raises(ValueError, match="no_such_param"):
        select_dimensions(_BadSpaces, ["buy"])
    with pytest.raises(ValueError, match="only 3 elements"):
        select_dimensions(_BadSpaces, ["roi"])
    all_dims = select_dimensions(RsiBollingerStrategy, ["all"])
    assert len(all_dims) == 5 + 2 + 2 + 3


def test_grid_sampler_visits_every_point_once() -> None:
    dims = [IntRange("rsi_period", 7, 21, step=7), Categorical("breakeven", (True, False)),
            FloatRange("bb_dev", 1.5, 2.5, step=0.5)]
    study = optuna.create_study(sampler=make_sampler("grid", dims, seed=3), direction="maximize")
    seen: list[tuple] = []

    def objective(trial: optuna.Trial) -> float:
        p = suggest(trial, dims)
        seen.append(tuple(p.values()))
        return float(p["rsi_period"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=50)  # the sampler stops the study once the grid is exhausted
    assert len(seen) == grid_size(dims) == 18
    assert set(seen) == {tuple(p.values()) for p in grid_points(dims)}
