"""Latency measurement and the risk tiers it drives.

Round trips are kept per endpoint in a bounded window; websocket delay is event time vs receipt. The tier comes
from the p99 round trip over the window (risk-rules.md): ≤ safe_ms normal; safe mode; no new entries; emergency.
Tiers rise at once but fall only after the lower tier has held for ``hold_s``, so a single fast answer in the
middle of trouble does not flip the engine back to normal.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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


class _Window:
    def __init__(self, size: int):
        self.samples: deque[float] = deque(maxlen=size)

    def stats(self) -> LatencyStats:
        if not self.samples:
            return LatencyStats(0, None, None)
        arr = np.fromiter(self.samples, dtype=float)
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
    ):
        self._thresholds = (safe_ms, no_entries_ms, emergency_ms)
        self._hold_s = hold_s
        self._window = window
        self._clock = clock
        self._on_change = on_tier_change
        self._rest: dict[str, _Window] = {}
        self._all = _Window(window)
        self._ws: dict[str, _Window] = {}
        self.tier = LatencyTier.NORMAL
        self._lower_since: float | None = None
        self._since_check = 0

    RECHECK_EVERY = 16  # samples between tier re-evaluations when nothing slow happened

    def record_rest(self, endpoint: str, ms: float) -> None:
        self._rest.setdefault(endpoint, _Window(self._window)).samples.append(ms)
        self._all.samples.append(ms)
        self._since_check += 1
        # A percentile over the window costs ~0.2 ms on the engine loop: pay it at once only when this sample could
        # raise the tier, otherwise every few samples (falling is held for seconds anyway).
        if ms > self._thresholds[0] or self.tier is not LatencyTier.NORMAL or self._since_check >= self.RECHECK_EVERY:
            self._since_check = 0
            self._update()

    def record_ws(self, stream: str, event_time_ms: int, received_ms: float | None = None) -> None:
        received = received_ms if received_ms is not None else time.time() * 1000
        self._ws.setdefault(stream, _Window(self._window)).samples.append(max(0.0, received - event_time_ms))

    def rest_stats(self, endpoint: str | None = None) -> LatencyStats:
        window = self._all if endpoint is None else self._rest.get(endpoint)
        return window.stats() if window else LatencyStats(0, None, None)

    def ws_stats(self, stream: str) -> LatencyStats:
        window = self._ws.get(stream)
        return window.stats() if window else LatencyStats(0, None, None)

    def endpoints(self) -> dict[str, LatencyStats]:
        return {name: w.stats() for name, w in sorted(self._rest.items())}

    def _tier_for(self, p99: float) -> LatencyTier:
        safe, no_entries, emergency = self._thresholds
        if p99 > emergency:
            return LatencyTier.EMERGENCY
        if p99 > no_entries:
            return LatencyTier.NO_ENTRIES
        if p99 > safe:
            return LatencyTier.SAFE
        return LatencyTier.NORMAL

    def _update(self) -> None:
        p99 = self._all.stats().p99_ms
        if p99 is None:
            return
        measured = self._tier_for(p99)
        now = self._clock()
        if measured > self.tier:
            self._set(measured)
            self._lower_since = None
        elif measured < self.tier:
            if self._lower_since is None:
                self._lower_since = now
            elif now - self._lower_since >= self._hold_s:
                self._set(measured)
                self._lower_since = None
        else:
            self._lower_since = None

    def _set(self, tier: LatencyTier) -> None:
        old, self.tier = self.tier, tier
        if self._on_change and old != tier:
            self._on_change(old, tier)
