"""Latency measurement and the risk tiers it drives.

Round trips are kept per endpoint in a bounded window; websocket delay is event time vs receipt. The tier comes
from the p99 round trip over the window (risk-rules.md): ≤ safe_ms normal; safe mode; no new entries; emergency.

The window is bounded by count *and by age*: a sample older than ``window_s`` no longer counts, so a p99 never
outlives the trouble it describes. With no recent sample the p99 is unknown (None), not the last number seen.

Tiers rise at once. They fall only once no evidence for the higher tier has been seen for ``hold_s``: the hold
counts from the start of the last request slow enough for that tier (not from the first fast answer after it),
so a single fast answer in the middle of trouble does not flip the engine back to normal, and a tier whose
evidence has gone quiet falls within ``hold_s`` of the fault ending even when few requests are made (entries are
paused at that point, so few are). Evaluation happens on every sample and on every read of ``tier``
(``refresh()``); whoever watches the tier should also call ``refresh()`` now and then, so that a fall is
announced when nothing else happens.

Thread-safe: one monitor may be shared by the clients of several threads (the service's and the engine's).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_WINDOW_S = 5.0  # the age window never shrinks below this, even with a hold time of 0


class LatencyTier(enum.IntEnum):
    NORMAL = 0
    SAFE = 1  # market orders instead of limit, half size
    NO_ENTRIES = 2  # exits only
    EMERGENCY = 3  # close positions by the configured rule


@dataclass(frozen=True)
class LatencyStats:
    count: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class TierChange:
    old: LatencyTier
    new: LatencyTier
    p99_ms: float | None  # the p99 that decided it; None when no recent sample exists (a fall for lack of evidence)
    at: float  # monitor clock


class _Window:
    """Samples as (start time, ms), at most ``size`` of them; only those younger than the horizon count."""

    def __init__(self, size: int):
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)

    def fresh(self, since: float) -> list[tuple[float, float]]:
        return [s for s in self.samples if s[0] > since]

    def stats(self, since: float) -> LatencyStats:
        return _stats([ms for _, ms in self.fresh(since)])


def _stats(values: list[float]) -> LatencyStats:
    if not values:
        return LatencyStats(0, None, None)
    arr = np.asarray(values, dtype=float)
    p50, p99 = np.percentile(arr, [50, 99])
    return LatencyStats(len(arr), float(p50), float(p99))


class LatencyMonitor:
    def __init__(
        self,
        safe_ms: float = 100,
        no_entries_ms: float = 500,
        emergency_ms: float = 1000,
        hold_s: float = 60,
        window: int = 200,
        clock: Callable[[], float] = time.monotonic,
        on_tier_change: Callable[[LatencyTier, LatencyTier], None] | None = None,
        window_s: float | None = None,
    ):
        """``window``: most samples kept per window; ``window_s``: their age limit in seconds (default: the hold
        time, at least 5 s), so a tier is back down at most ``max(hold_s, window_s)`` after the last slow request
        started."""
        self._thresholds = (safe_ms, no_entries_ms, emergency_ms)
        self._hold_s = hold_s
        self._window = window
        self._horizon = float(window_s) if window_s is not None else max(float(hold_s), MIN_WINDOW_S)
        self._clock = clock
        self._on_change = on_tier_change
        self._rest: dict[str, _Window] = {}
        self._all = _Window(window)
        self._ws: dict[str, _Window] = {}
        self._tier = LatencyTier.NORMAL
        # Start time of the latest request that was evidence for each tier (index = tier value).
        self._evidence: list[float] = [float("-inf")] * 4
        self._since_check = 0
        self._lock = threading.RLock()
        self.last_change: TierChange | None = None

    RECHECK_EVERY = 16  # samples between tier re-evaluations when nothing slow happened

    @property
    def hold_s(self) -> float:
        return self._hold_s

    @property
    def window_s(self) -> float:
        return self._horizon

    @property
    def tier(self) -> LatencyTier:
        """The current tier, re-evaluated first (a fall whose hold has passed happens on this read)."""
        if self._tier is not LatencyTier.NORMAL:
            self.refresh()
        return self._tier

    @tier.setter
    def tier(self, value: LatencyTier) -> None:  # tests and tools only
        with self._lock:
            self._tier = LatencyTier(value)

    def record_rest(self, endpoint: str, ms: float) -> None:
        ms = max(0.0, float(ms))
        now = self._clock()
        sample = (now - ms / 1000.0, ms)  # stamped with the request's start: when the slowness began
        with self._lock:
            self._rest.setdefault(endpoint, _Window(self._window)).samples.append(sample)
            self._all.samples.append(sample)
            self._since_check += 1
            # A percentile over the window costs ~0.2 ms on the engine loop: pay it at once only when this sample
            # could raise the tier, otherwise every few samples (falling is held for seconds anyway).
            due = (ms > self._thresholds[0] or self._tier is not LatencyTier.NORMAL
                   or self._since_check >= self.RECHECK_EVERY)
            change = self._evaluate(now) if due else None
        self._announce(change)

    def refresh(self) -> LatencyTier:
        """Re-evaluate the tier now (without a new sample); announces a change like a sample would."""
        with self._lock:
            change = self._evaluate(self._clock())
        self._announce(change)
        return self._tier

    def record_ws(self, stream: str, event_time_ms: int, received_ms: float | None = None) -> None:
        received = received_ms if received_ms is not None else time.time() * 1000
        with self._lock:
            self._ws.setdefault(stream, _Window(self._window)).samples.append(
                (self._clock(), max(0.0, received - event_time_ms)))

    def _since(self) -> float:
        return self._clock() - self._horizon

    def rest_stats(self, endpoint: str | None = None) -> LatencyStats:
        """Round trips of the last ``window_s`` seconds; p99 None when there were none (unknown, not stale)."""
        with self._lock:
            window = self._all if endpoint is None else self._rest.get(endpoint)
            return window.stats(self._since()) if window else LatencyStats(0, None, None)

    def ws_stats(self, stream: str) -> LatencyStats:
        with self._lock:
            window = self._ws.get(stream)
            return window.stats(self._since()) if window else LatencyStats(0, None, None)

    def endpoints(self) -> dict[str, LatencyStats]:
        with self._lock:
            since = self._since()
            return {name: w.stats(since) for name, w in sorted(self._rest.items())}

    def _tier_for(self, p99: float) -> LatencyTier:
        safe, no_entries, emergency = self._thresholds
        if p99 > emergency:
            return LatencyTier.EMERGENCY
        if p99 > no_entries:
            return LatencyTier.NO_ENTRIES
        if p99 > safe:
            return LatencyTier.SAFE
        return LatencyTier.NORMAL

    def _evaluate(self, now: float) -> TierChange | None:
        """Under the lock: the tier from the fresh window and the evidence still within the hold."""
        self._since_check = 0
        fresh = self._all.fresh(now - self._horizon)
        p99 = _stats([ms for _, ms in fresh]).p99_ms
        measured = LatencyTier.NORMAL if p99 is None else self._tier_for(p99)
        # The measured tier is evidence for itself and each tier below it, dated by the latest request slow enough
        # for that tier (there is one: a p99 above a threshold needs a sample above it).
        for tier in range(LatencyTier.SAFE, measured + 1):
            threshold = self._thresholds[tier - 1]
            latest = max((start for start, ms in fresh if ms > threshold), default=None)
            if latest is not None and latest > self._evidence[tier]:
                self._evidence[tier] = latest
        held = max((t for t in range(LatencyTier.SAFE, LatencyTier.EMERGENCY + 1)
                    if now - self._evidence[t] < self._hold_s), default=LatencyTier.NORMAL)
        target = LatencyTier(max(measured, held))
        if measured > self._tier:
            target = measured  # rise at once
        elif target > self._tier:
            target = self._tier  # evidence only holds a tier up; it never raises one
        if target == self._tier:
            return None
        old, self._tier = self._tier, target
        self.last_change = TierChange(old, target, p99, now)
        return self.last_change

    def _announce(self, change: TierChange | None) -> None:
        if change is not None and self._on_change is not None:
            self._on_change(change.old, change.new)
