"""Rolling walk-forward windows: optimise on a train window, judge on the test window that follows it.

Fold k trains on [start + k·test, start + k·test + train) and tests on the next ``test`` span; the windows roll
forward by one test length, so test windows tile the tail of the range without overlapping and every test window
lies strictly after its own training data. Edges are aligned to the bar size so no candle is cut in two. Holes in
the data need no handling here: each window is one backtest and the runner splits a run at every gap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Fold:
    index: int
    train_start_ms: int
    train_end_ms: int  # exclusive
    test_start_ms: int
    test_end_ms: int  # exclusive

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        for k in ("train_start_ms", "train_end_ms", "test_start_ms", "test_end_ms"):
            d[k.removesuffix("_ms")] = _iso(d[k])
        return d

    def label(self) -> str:
        return (f"train {_iso(self.train_start_ms)} → {_iso(self.train_end_ms)}, "
                f"test → {_iso(self.test_end_ms)}")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def walk_forward(start_ms: int, end_ms: int, *, folds: int | None = None, train_ms: int | None = None,
                 test_ms: int | None = None, train_ratio: float = 3.0, bar_ms: int = 60_000) -> list[Fold]:
    """Folds over [start_ms, end_ms).

    Give ``train_ms`` and ``test_ms`` (as many folds as fit, at most ``folds``), or ``folds`` alone (the range is
    cut so that train = ``train_ratio`` × test). Raises ValueError when not even one fold fits.
    """
    if end_ms <= start_ms:
        raise ValueError("walk-forward range is empty")
    span = end_ms - start_ms
    if train_ms is None and test_ms is None:
        if not folds or folds < 1:
            raise ValueError("give folds, or train and test lengths")
        test_ms = int(span / (folds + train_ratio))
        train_ms = int(test_ms * train_ratio)
    elif test_ms is None:
        test_ms = int(train_ms / train_ratio)  # type: ignore[operator]  # both None was the branch above
    elif train_ms is None:
        train_ms = int(test_ms * train_ratio)
    train_ms = train_ms // bar_ms * bar_ms
    test_ms = test_ms // bar_ms * bar_ms
    if train_ms <= 0 or test_ms <= 0:
        raise ValueError("train and test windows must each hold at least one bar")
    fit = (span - train_ms) // test_ms if span >= train_ms + test_ms else 0
    n = min(fit, folds) if folds else fit
    if n < 1:
        raise ValueError(f"the range ({span / 86_400_000:.2f} d) is too short for one train ({train_ms / 86_400_000:.2f}"
                         f" d) + test ({test_ms / 86_400_000:.2f} d) window")
    # Anchor the last test window at the end of the range so the newest data is always tested.
    first = end_ms - (train_ms + n * test_ms)
    first = start_ms + (first - start_ms) // bar_ms * bar_ms
    out = []
    for k in range(n):
        train_start = first + k * test_ms
        train_end = train_start + train_ms
        out.append(Fold(k, train_start, train_end, train_end, train_end + test_ms))
    return out
