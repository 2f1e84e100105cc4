"""Votes across horizons: each horizon's head votes up or down when its probability reaches the threshold, the
ensemble follows the weighted majority and says how many agreed. A confirmed reversal against the majority (a top
called while the horizons vote up) cancels the call: the two models disagree, so the ensemble abstains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from trader.ml.labels import BOTTOM, DOWN, TOP, UP


@dataclass(frozen=True)
class Vote:
    direction: int  # +1 long, −1 short, 0 no call
    score: float  # weighted mean of (P(up) − P(down)) over horizons, −1..1
    votes: dict[int, int] = field(default_factory=dict)  # horizon → +1/−1/0
    agree: int = 0  # horizons voting with the direction
    reason: str = ""


def vote(horizons: Mapping[int, np.ndarray], threshold: float | Mapping[int, float] = 0.5, *, weights: Mapping[int, float] | None = None,
         min_agree: int = 2, reversal: np.ndarray | None = None, reversal_threshold: float = 0.5) -> Vote:
    if not horizons:
        return Vote(0, 0.0, reason="no horizon available")
    votes: dict[int, int] = {}
    num = den = 0.0
    for h, p in horizons.items():
        w = (weights or {}).get(h, 1.0)
        up, down = float(p[UP]), float(p[DOWN])
        thr = threshold.get(h, 0.5) if isinstance(threshold, Mapping) else threshold
        votes[h] = 1 if up >= thr and up >= down else -1 if down >= thr and down > up else 0
        num += w * (up - down)
        den += w
    score = num / den if den else 0.0
    tally = sum(votes.values())
    direction = int(np.sign(tally))
    agree = sum(1 for v in votes.values() if v == direction and v != 0)
    need = min(min_agree, len(horizons))
    if direction == 0 or agree < need:
        return Vote(0, score, votes, agree, f"{agree} of {len(horizons)} horizons agree (need {need})")
    if reversal is not None:
        against = TOP if direction > 0 else BOTTOM
        if float(reversal[against]) >= reversal_threshold:
            return Vote(0, score, votes, agree, "reversal model calls a turn against the horizons")
    return Vote(direction, score, votes, agree, "")
