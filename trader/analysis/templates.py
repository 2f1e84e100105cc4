"""Pattern matching against shipped shape templates by dynamic time warping (dtaidistance's C implementation).

A window of the last ``length`` closes ending at bar t is z-normalised (so only its shape counts, not its price
or size) and compared with every template under a Sakoe-Chiba band; the match is the nearest template when its
distance per point is under ``max_distance``. The completion bar of a match is t itself: the window never
reaches past it. Templates live in ``trader/resources/analysis/pattern_templates.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Array = np.ndarray


@dataclass(frozen=True)
class Template:
    name: str
    direction: int  # the move the pattern is traded for: +1 up, −1 down, 0 either way
    points: tuple[tuple[float, float], ...]

    def curve(self, length: int) -> Array:
        xs, ys = zip(*self.points, strict=True)
        return _znorm(np.interp(np.linspace(0.0, 1.0, length), xs, ys))


@lru_cache(maxsize=1)
def load_templates() -> tuple[Template, ...]:
    raw = json.loads((resources.files("trader") / "resources" / "analysis" / "pattern_templates.json")
                     .read_text(encoding="utf-8"))
    return tuple(Template(name, int(spec["direction"]), tuple((float(x), float(y)) for x, y in spec["points"]))
                 for name, spec in raw.items() if not name.startswith("_"))


def _znorm(x: Array) -> Array:
    sd = x.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.ascontiguousarray((x - x.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, np.nan))


@dataclass(frozen=True)
class TemplateParams:
    length: int = 48  # bars in the window (two days of 1h bars)
    band: float = 0.1  # Sakoe-Chiba band as a fraction of the length: how far the warp may stretch time
    # DTW distance / sqrt(length) (≈ RMS gap of the z-scores) under which a shape matches: ~1 % of random-walk
    # windows fall under 0.25, template shapes with noise of 5 % of their height around 0.15-0.2.
    max_distance: float = 0.25
    stride: int = 1  # evaluate every ``stride``-th bar (1 = every bar)


@dataclass(frozen=True)
class TemplateMatch:
    bar: int  # completion bar: the window is bars [bar − length + 1, bar]
    name: str
    direction: int
    distance: float


def template_distances(close: Array, p: TemplateParams | None = None,
                       templates: tuple[Template, ...] | None = None) -> tuple[Array, Array]:
    """(distances, bars): distances[k, j] is template k against the window ending at bars[j]. Computed in one
    C call (dtaidistance's block distance matrix) rather than a Python loop over windows: ~1 µs per pair."""
    p = p or TemplateParams()
    templates = templates or load_templates()
    n, L = len(close), p.length
    if n < L:
        return np.empty((len(templates), 0)), np.empty(0, dtype=int)
    bars = np.arange(L - 1, n, p.stride)
    windows = _znorm(sliding_window_view(np.asarray(close, dtype="float64"), L)[bars - (L - 1)])
    valid = ~np.isnan(windows).any(axis=1)  # a flat window has no shape
    curves = np.vstack([t.curve(L) for t in templates])
    dist = np.full((len(templates), len(bars)), np.nan)
    if valid.any():
        series = np.ascontiguousarray(np.vstack([curves, windows[valid]]))
        k = len(templates)
        from dtaidistance import dtw  # imported here: every strategy import reaches this module, few run DTW

        flat = np.asarray(dtw.distance_matrix_fast(series, window=max(1, int(p.band * L)),
                                                   block=((0, k), (k, len(series))), compact=True, parallel=False))
        dist[:, valid] = flat.reshape(k, -1)
    return dist / np.sqrt(L), bars


def match_templates(close: Array, p: TemplateParams | None = None,
                    templates: tuple[Template, ...] | None = None) -> list[TemplateMatch]:
    """Every bar whose window matches a template (the nearest one), oldest first."""
    p = p or TemplateParams()
    templates = templates or load_templates()
    dist, bars = template_distances(close, p, templates)
    if not dist.size:
        return []
    with np.errstate(invalid="ignore"):
        best = np.nanargmin(np.where(np.isnan(dist), np.inf, dist), axis=0)
    best_d = dist[best, np.arange(len(bars))]
    hit = best_d <= p.max_distance
    return [TemplateMatch(int(b), templates[k].name, templates[k].direction, float(d))
            for b, k, d in zip(bars[hit], best[hit], best_d[hit], strict=True)]


def template_signal(n: int, matches: list[TemplateMatch]) -> tuple[Array, Array]:
    """(direction, distance) per bar: the matched template's direction at its completion bar, 0 / NaN elsewhere."""
    direction = np.zeros(n)
    distance = np.full(n, np.nan)
    for m in matches:
        direction[m.bar] = m.direction
        distance[m.bar] = m.distance
    return direction, distance
