"""Optuna samplers by name, built from the selected dimensions and seeded.

- ``grid``: every point of the declared grid, in a seeded random order (optuna's GridSampler); several workers
  share the visited set through the storage.
- ``nsga2``: NSGA-II, a genetic algorithm (population, crossover, mutation); single objective here.
- ``tpe``: Tree-structured Parzen Estimator, a Bayesian sampler; random for its first trials.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from trader.optimize.spaces import Dimension, grid

SAMPLERS = ("tpe", "nsga2", "grid")


def make_sampler(name: str, dims: Sequence[Dimension], seed: int | None, epochs: int = 100,
                 ) -> optuna.samplers.BaseSampler:
    if name == "grid":
        return optuna.samplers.GridSampler(grid(dims), seed=seed)
    if name == "nsga2":
        # A population of a fifth of the budget (10..50) leaves room for several generations on a small budget.
        return optuna.samplers.NSGAIISampler(population_size=max(10, min(50, epochs // 5)), seed=seed)
    if name == "tpe":
        # Multivariate TPE models interactions (e.g. RSI threshold × band width); warnings about it being
        # experimental are noise for a user.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(n_startup_trials=max(5, min(20, epochs // 4)), multivariate=True,
                                              seed=seed)
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
