"""Parameter spaces declared on a strategy class, and what samplers need from them.

A strategy declares ``spaces`` as a mapping of space name (``buy``, ``sell``, ``stoploss``, ``roi``, ...) to a tuple
of dimensions::

    spaces = {"buy": (IntRange("rsi_period", 7, 21, step=7), FloatRange("rsi_low", 20, 40, step=5)), ...}

Every dimension has a finite step (or a list of choices) so a grid search is a finite product. A dimension named
``param[i]`` sets element ``i`` of a tuple parameter (``tp_moves[0]`` is the first take-profit tier), starting
from the parameter's default, so tuple-valued Backtrader params can be searched one element at a time.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # strategies import this module; optuna stays out of the live engine's imports
    import optuna

Choice = bool | int | float | str
_INDEXED = re.compile(r"^(?P<param>\w+)\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class IntRange:
    name: str
    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step <= 0 or self.high < self.low:
            raise ValueError(f"{self.name}: need low ≤ high and step > 0")

    def values(self) -> list[Choice]:
        return list(range(self.low, self.high + 1, self.step))

    def suggest(self, trial: optuna.Trial) -> Choice:
        return trial.suggest_int(self.name, self.low, self.high, step=self.step)


@dataclass(frozen=True)
class FloatRange:
    name: str
    low: float
    high: float
    step: float

    def __post_init__(self) -> None:
        if self.step <= 0 or self.high < self.low:
            raise ValueError(f"{self.name}: need low ≤ high and step > 0")

    def values(self) -> list[Choice]:
        # Rounded so grid values equal what suggest_float(step=...) returns, and print as the declaration reads.
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 10) for i in range(n + 1)]

    def suggest(self, trial: optuna.Trial) -> Choice:
        return round(trial.suggest_float(self.name, self.low, self.high, step=self.step), 10)


@dataclass(frozen=True)
class Categorical:
    name: str
    choices: tuple[Choice, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"{self.name}: no choices")

    def values(self) -> list[Choice]:
        return list(self.choices)

    def suggest(self, trial: optuna.Trial) -> Choice:
        return trial.suggest_categorical(self.name, list(self.choices))


Dimension = IntRange | FloatRange | Categorical


def declared_spaces(strategy: type) -> dict[str, tuple[Dimension, ...]]:
    spaces = getattr(strategy, "spaces", None)
    if not spaces:
        raise ValueError(f"{strategy.__name__} declares no parameter spaces")
    return {name: tuple(dims) for name, dims in spaces.items()}


def select_dimensions(strategy: type, names: Sequence[str]) -> list[Dimension]:
    """The dimensions of the named spaces (``all`` = every declared space), checked against the strategy params."""
    spaces = declared_spaces(strategy)
    wanted = list(spaces) if "all" in names else list(dict.fromkeys(names))
    if not wanted:
        raise ValueError("no spaces selected")
    unknown = [n for n in wanted if n not in spaces]
    if unknown:
        raise ValueError(f"unknown space(s) {', '.join(unknown)} for {strategy.__name__}; "
                         f"declared: {', '.join(spaces)} (or all)")
    dims = [d for n in wanted for d in spaces[n]]
    names_seen = [d.name for d in dims]
    if len(set(names_seen)) != len(names_seen):
        raise ValueError(f"{strategy.__name__}: a parameter appears in two selected spaces")
    defaults = strategy.param_values()
    for d in dims:
        m = _INDEXED.match(d.name)
        param = m["param"] if m else d.name
        if param not in defaults:
            raise ValueError(f"{strategy.__name__} space dimension {d.name!r} names no strategy parameter")
        if m and int(m["index"]) >= len(defaults[param]):
            raise ValueError(f"{d.name!r}: {param} has only {len(defaults[param])} elements")
    return dims


def grid(dims: Sequence[Dimension]) -> dict[str, list[Choice]]:
    """The search space of optuna's GridSampler: every value of every dimension."""
    return {d.name: d.values() for d in dims}


def grid_size(dims: Sequence[Dimension]) -> int:
    return math.prod(len(d.values()) for d in dims)


def grid_points(dims: Sequence[Dimension]) -> list[dict[str, Choice]]:
    names = [d.name for d in dims]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(d.values() for d in dims))]


def suggest(trial: optuna.Trial, dims: Sequence[Dimension]) -> dict[str, Choice]:
    return {d.name: d.suggest(trial) for d in dims}


def to_strategy_params(strategy: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Space values → ``strategy_params`` overrides (``tp_moves[1]`` folded into the ``tp_moves`` tuple)."""
    defaults = strategy.param_values()
    out: dict[str, Any] = {}
    for name, value in values.items():
        m = _INDEXED.match(name)
        if not m:
            out[name] = value
            continue
        param = m["param"]
        seq = list(out.get(param, defaults[param]))
        seq[int(m["index"])] = value
        out[param] = tuple(seq)
    return out
