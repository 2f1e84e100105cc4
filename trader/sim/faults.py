"""Fault injection, switchable at run time through the admin API: latency and jitter, a share of failed answers
(503, −1001, 429, and −1007 whose order *was* executed — the "status unknown" case clients must reconcile),
websocket drops, a maintenance window and scripted price paths (flash crash, see ``flash_crash_path``)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from trader.sim.errors import BinanceError

FAULT_KINDS = ("503", "-1001", "429", "-1007")


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_share: float = 0.0  # 0..1 of /fapi requests that fail
    error_kinds: list[str] = field(default_factory=lambda: ["503", "-1001", "429"])
    maintenance_start_ms: int = 0  # replay time; start == end == 0 → none
    maintenance_end_ms: int = 0
    ws_drop_every_s: float = 0.0  # close every stream socket this often (wall seconds), 0 → never
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def update(self, values: dict[str, object]) -> None:
        for k, v in values.items():
            if k.startswith("_") or not hasattr(self, k):
                raise KeyError(k)
            if k == "error_kinds":
                kinds = [str(x) for x in v]  # type: ignore[union-attr]
                bad = [x for x in kinds if x not in FAULT_KINDS]
                if bad:
                    raise ValueError(f"unknown fault kinds {bad}; use {FAULT_KINDS}")
                self.error_kinds = kinds
            else:
                setattr(self, k, type(getattr(self, k))(v))
        if "seed" in values:
            self._rng.seed(self.seed)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("_rng", None)
        return d

    def in_maintenance(self, sim_ms: int) -> bool:
        return self.maintenance_start_ms <= sim_ms < self.maintenance_end_ms

    def delay_s(self) -> float:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return 0.0
        return max(0.0, self.latency_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000

    def pick_failure(self) -> str | None:
        """The fault kind this request suffers, or None."""
        if self.error_share <= 0 or not self.error_kinds or self._rng.random() >= self.error_share:
            return None
        return self._rng.choice(self.error_kinds)


def failure_error(kind: str) -> BinanceError:
    if kind == "503":
        return BinanceError(-1001, "Service Unavailable.", 503)
    if kind == "-1001":
        return BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 500)
    if kind == "429":
        return BinanceError(-1003, "Too many requests; current limit is 2400 requests per minute. Please use the "
                                   "websocket for live updates to avoid polling the API.", 429)
    return BinanceError(-1007, "Timeout waiting for response from backend server. Send status unknown; execution "
                               "status unknown.", 408)


def flash_crash_path(now_ms: int, price: float, drop_pct: float, duration_ms: int, rebound_pct: float = 100.0
                     ) -> list[tuple[int, float]]:
    """A V: down ``drop_pct`` % in the first third of ``duration_ms``, then back up by ``rebound_pct`` % of the
    drop. Starts from the current price so the path is continuous."""
    bottom = price * (1 - drop_pct / 100)
    end = bottom + (price - bottom) * rebound_pct / 100
    return [(now_ms, price), (now_ms + max(1, duration_ms // 3), bottom), (now_ms + max(2, duration_ms), end)]
