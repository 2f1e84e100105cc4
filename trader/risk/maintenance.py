"""Exchange maintenance windows: no new entries from ``lead`` before a window until it ends; after it, the account is
read again (orders and positions may have changed while the exchange was away, and the streams were down).

Where windows come from:
- Binance announces scheduled maintenance in its announcements (binance.com/en/support/announcement, the
  "Maintenance Updates" list) and has no futures API for the schedule; ``GET /sapi/v1/system/status`` only says
  whether the system is in maintenance *now*. So a deployment against Binance lists announced windows in the
  configuration (``risk.maintenance.windows``).
- The simulator publishes its schedule at ``GET /bsmart/v1/maintenance`` (a path of this product, not of Binance;
  scheduled through the admin API ``POST /_sim/maintenance``); the exchange client reads it there
  (``ExchangeClient.fetch_maintenance_windows``), and during a window the simulator answers every /fapi request
  as Binance does in maintenance: HTTP 503 "Service Unavailable.".
- A 503 from the exchange outside any known window still counts: the window is assumed to last until the exchange
  answers again (``MaintenanceSchedule.observe_unavailable``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Phase(enum.Enum):
    NONE = "none"
    UPCOMING = "upcoming"  # within the lead time before a window: entries refused
    ACTIVE = "active"


@dataclass(frozen=True)
class MaintenanceWindow:
    start_ms: int
    end_ms: int
    title: str = ""

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError(f"a maintenance window must end after it starts: {self.start_ms} .. {self.end_ms}")

    def as_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "title": self.title,
                "start": _iso(self.start_ms), "end": _iso(self.end_ms)}


@dataclass(frozen=True)
class MaintenanceState:
    phase: Phase
    window: MaintenanceWindow | None
    now_ms: int
    lead_ms: int

    @property
    def entries_allowed(self) -> bool:
        return self.phase is Phase.NONE

    @property
    def reason(self) -> str:
        """The rule and its numbers (English; the bot words it in the user's language from ``values``)."""
        w = self.window
        if w is None:
            return ""
        if self.phase is Phase.ACTIVE:
            return f"exchange maintenance until {_iso(w.end_ms)}"
        if self.phase is Phase.UPCOMING:
            return (f"exchange maintenance from {_iso(w.start_ms)} to {_iso(w.end_ms)} "
                    f"(no entries from {self.lead_ms // 60_000} min before)")
        return ""

    def values(self) -> dict[str, float | str]:
        w = self.window
        if w is None:
            return {}
        return {"phase": self.phase.value, "start": _iso(w.start_ms), "end": _iso(w.end_ms),
                "lead_min": self.lead_ms // 60_000, "minutes_to_start": round((w.start_ms - self.now_ms) / 60_000, 1)}


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def parse_windows(rows: Iterable[Mapping[str, Any]]) -> list[MaintenanceWindow]:
    """Windows from the simulator's feed (``start_ms``/``end_ms``) or the configuration (``start``/``end`` as ISO
    8601 times with a zone); a row without either pair of keys is an error naming the row."""
    out = []
    for i, row in enumerate(rows):
        if "start_ms" in row and "end_ms" in row:
            start, end = int(row["start_ms"]), int(row["end_ms"])
        elif "start" in row and "end" in row:
            start, end = _ms(row["start"], i), _ms(row["end"], i)
        else:
            raise ValueError(f"maintenance window {i}: needs start_ms/end_ms or start/end, got {sorted(row)}")
        out.append(MaintenanceWindow(start, end, str(row.get("title") or "")))
    return sorted(out, key=lambda w: w.start_ms)


def _ms(value: Any, i: int) -> int:
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"maintenance window {i}: {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"maintenance window {i}: {value!r} has no time zone (add Z for UTC)")
    return int(when.timestamp() * 1000)


@dataclass
class MaintenanceSchedule:
    """The windows known now (configured ones plus the exchange's feed) and what they mean at a given time."""

    lead_ms: int = 30 * 60_000
    configured: list[MaintenanceWindow] = field(default_factory=list)
    announced: list[MaintenanceWindow] = field(default_factory=list)  # from the exchange's feed, replaced on read
    unavailable_since_ms: int | None = None  # a 503 outside any known window: maintenance until answered again
    _was_blocked: bool = False

    @property
    def windows(self) -> list[MaintenanceWindow]:
        return sorted([*self.configured, *self.announced], key=lambda w: w.start_ms)

    def set_announced(self, windows: list[MaintenanceWindow]) -> None:
        self.announced = list(windows)

    def observe_unavailable(self, now_ms: int) -> None:
        if self.unavailable_since_ms is None:
            self.unavailable_since_ms = now_ms

    def observe_available(self) -> None:
        self.unavailable_since_ms = None

    def state(self, now_ms: int) -> MaintenanceState:
        for w in self.windows:
            if w.start_ms <= now_ms < w.end_ms:
                return MaintenanceState(Phase.ACTIVE, w, now_ms, self.lead_ms)
        if self.unavailable_since_ms is not None:
            return MaintenanceState(Phase.ACTIVE, MaintenanceWindow(self.unavailable_since_ms, now_ms + 1,
                                                                    "exchange unavailable (503)"), now_ms, self.lead_ms)
        for w in self.windows:
            if now_ms < w.start_ms <= now_ms + self.lead_ms:
                return MaintenanceState(Phase.UPCOMING, w, now_ms, self.lead_ms)
        return MaintenanceState(Phase.NONE, None, now_ms, self.lead_ms)

    def next_window(self, now_ms: int) -> MaintenanceWindow | None:
        return next((w for w in self.windows if w.end_ms > now_ms), None)

    def transition(self, now_ms: int) -> tuple[MaintenanceState, str | None]:
        """The state now and what changed since the last call: "blocked" (entries stop), "ended" (the window is
        over: resync the account), or None."""
        state = self.state(now_ms)
        blocked = not state.entries_allowed
        change = None
        if blocked and not self._was_blocked:
            change = "blocked"
        elif not blocked and self._was_blocked:
            change = "ended"
        self._was_blocked = blocked
        return state, change
