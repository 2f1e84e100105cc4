"""Signal fusion: technical signals, ML predictions (when a model is active) and market state, weighted by how
often each source has been right, per regime.

Method — Beta–Bernoulli posteriors of each source's directional hit rate, per (regime, source):
- every source gives a vote in [−1, 1] when a trade is considered: ``technical`` (the routed setup: its direction,
  scaled by how many timeframes agree), ``mtf`` (the trend alignment of 15m/1h/4h), ``volume`` (the signed volume
  surprise of the signal bar), ``ml`` (2·p − 1 of the active model; absent when none is);
- when that trade closes, each source that voted is scored: a hit when its vote's sign is the direction that made
  money (the trade's side if it won, the other one if it lost) — α += 1 on a hit, β += 1 on a miss;
- weight of a source = the posterior mean hit rate α/(α+β); the fused score is Σ w·v / Σ w over the sources that
  voted; a source whose hit rate is below ½ with ≥ 90 % posterior probability is muted (weight 0).

Why this method: the outcome per source is a yes/no, for which the Beta prior is conjugate — an update is two
additions, the state is two numbers per source and regime, the posterior carries its own uncertainty (a source
with 3 trades moves its weight little, one with 300 a lot), and a neutral prior Beta(1, 1) (hit rate ½, the weights
of all sources equal) is the honest start. Markets change, so evidence is discounted: before each update both
counts shrink toward the prior by ``decay`` (0.98: an effective memory of ~50 trades per regime and source).

The book is persisted as JSON (``FusionBook(path)``; written atomically after every update, read back at start), so
the weights survive a restart; ``fusion_table(path)`` is the display view. An ML model plugs in through
``set_ml_provider`` (``MLProvider``: ``predict(pair, at_ms, features) -> Prediction | None``): the main job installs
``trader.ml.live.PredictorProvider`` when a model is active; without one no ``ml`` vote is cast and grade 3 is
never given.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SOURCES = ("technical", "mtf", "volume", "ml")


# --- the optional ML provider ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    direction: int  # +1 up, −1 down
    probability: float  # of that direction, 0.5..1
    model: str = ""


class MLProvider(Protocol):
    def predict(self, pair: str, at_ms: int, features: Mapping[str, float]) -> Prediction | None:
        """A causal prediction at ``at_ms`` (the close of the bar whose ``features`` are given), or None."""
        ...


_provider: MLProvider | None = None


def set_ml_provider(provider: MLProvider | None) -> None:
    """Activate (or, with None, deactivate) the model every strategy in this process consults."""
    global _provider
    _provider = provider


def get_ml_provider() -> MLProvider | None:
    return _provider


# --- posteriors -----------------------------------------------------------------------------------------------
@dataclass
class Posterior:
    alpha: float
    beta: float
    n: int = 0  # updates seen (not discounted)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        a, b = self.alpha, self.beta
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    def interval(self, z: float = 1.645) -> tuple[float, float]:
        """≈ 90 % interval (normal approximation of the Beta, clipped to 0..1)."""
        m, s = self.mean, self.sd
        return max(0.0, m - z * s), min(1.0, m + z * s)

    def prob_below_half(self) -> float:
        """P(hit rate < ½) under the normal approximation."""
        s = self.sd
        return 0.5 * (1.0 + math.erf((0.5 - self.mean) / (s * math.sqrt(2.0)))) if s > 0 else float(self.mean < 0.5)


@dataclass(frozen=True)
class Fused:
    score: float  # Σ w·v / Σ w, −1..1 (NaN when nothing voted)
    weights: dict[str, float]
    votes: dict[str, float]


@dataclass
class FusionBook:
    path: Path | None = None
    prior: tuple[float, float] = (1.0, 1.0)
    decay: float = 0.98
    mute_below: float = 0.9  # mute a source when P(hit rate < ½) ≥ this
    posteriors: dict[str, dict[str, Posterior]] = field(default_factory=dict)
    updated_ms: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: str | Path | None, **kwargs: Any) -> FusionBook:
        """The book at ``path`` (neutral when the file does not exist yet); in memory only without a path."""
        book = cls(Path(path) if path else None, **kwargs)
        if book.path is not None and book.path.exists():
            raw = json.loads(book.path.read_text())
            book.prior = tuple(raw.get("prior", book.prior))  # type: ignore[assignment]
            book.decay = float(raw.get("decay", book.decay))
            book.updated_ms = int(raw.get("updated_ms", 0))
            book.posteriors = {r: {s: Posterior(float(v["alpha"]), float(v["beta"]), int(v.get("n", 0)))
                                   for s, v in per.items()} for r, per in raw.get("posteriors", {}).items()}
        return book

    def posterior(self, regime: str, source: str) -> Posterior:
        per = self.posteriors.get(regime, {})
        return per.get(source) or Posterior(*self.prior)

    def weight(self, regime: str, source: str) -> float:
        post = self.posterior(regime, source)
        if post.n and post.prob_below_half() >= self.mute_below:
            return 0.0
        return post.mean

    def fuse(self, regime: str, votes: Mapping[str, float]) -> Fused:
        w: dict[str, float] = {}
        used: dict[str, float] = {}
        num = den = 0.0
        for s, v in votes.items():
            if v is None or not math.isfinite(v):
                continue
            ws = self.weight(regime, s)
            w[s], used[s] = ws, v
            num += ws * v
            den += ws
        return Fused(num / den if den > 0 else math.nan, w, used)

    def update(self, regime: str, votes: Mapping[str, float], outcome: int, at_ms: int | None = None) -> None:
        """Score each source that voted against the direction that made money (``outcome`` ±1)."""
        a0, b0 = self.prior
        with self._lock:
            per = self.posteriors.setdefault(regime, {})
            for s, v in votes.items():
                if v is None or not math.isfinite(v) or v == 0:
                    continue
                post = per.get(s) or Posterior(a0, b0)
                hit = (v > 0) == (outcome > 0)
                post.alpha = a0 + self.decay * (post.alpha - a0) + (1.0 if hit else 0.0)
                post.beta = b0 + self.decay * (post.beta - b0) + (0.0 if hit else 1.0)
                post.n += 1
                per[s] = post
            self.updated_ms = int(at_ms if at_ms is not None else time.time() * 1000)
        self.save()

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "method": "beta-bernoulli hit rate per regime and source", "prior": list(self.prior),
                "decay": self.decay, "updated_ms": self.updated_ms,
                "posteriors": {r: {s: {"alpha": p.alpha, "beta": p.beta, "n": p.n} for s, p in per.items()}
                               for r, per in self.posteriors.items()}}

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fusion-", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def table(self) -> list[dict[str, Any]]:
        """One row per (regime, source) seen or not: weight, hit rate with its ≈ 90 % interval, evidence, muted."""
        rows = []
        regimes = sorted(set(self.posteriors) | {"ranging", "trending", "breakout", "volatile"})
        for r in regimes:
            for s in SOURCES:
                p = self.posterior(r, s)
                lo, hi = p.interval()
                rows.append({"regime": r, "source": s, "weight": round(self.weight(r, s), 4),
                             "hit_rate": round(p.mean, 4), "low": round(lo, 4), "high": round(hi, 4), "n": p.n,
                             "muted": bool(p.n and p.prob_below_half() >= self.mute_below)})
        return rows


def fusion_table(path: str | Path) -> list[dict[str, Any]]:
    """The display view of a persisted book (neutral rows when it does not exist yet)."""
    return FusionBook.load(path).table()
