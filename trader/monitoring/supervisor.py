"""The supervisor: every ``interval`` each component is probed; a dead or stuck one is restarted, within a limit.

A component is a name, a probe (an awaitable answering ok / warning / down / off with a detail) and optionally a
restart. A probe that does not answer within ``timeout_s`` counts as down ("stuck"). A component found down is
restarted at once if it has a restart and its restart group (components that restart the same thing, e.g. the
engine and its market streams) has had fewer than ``max_restarts_per_hour`` restarts in the past hour; past the
limit the supervisor alerts once and stops trying until the component has recovered. Every change of state is an
alert (``alert(component, state, detail)``); a component that stays down is not re-alerted every cycle.

The summary (states, restarts in the last 24 h, the last self-benchmark and resource sample) is what the daily
report shows. Restart history is kept in memory: a process restart starts it afresh.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from trader.monitoring.resources import ResourceUse

log = logging.getLogger(__name__)

State = Literal["ok", "warning", "down", "off"]
RESTART_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Probe:
    state: State
    detail: str = ""


@dataclass
class Component:
    name: str
    probe: Callable[[], Awaitable[Probe]]
    restart: Callable[[], Awaitable[None]] | None = None
    restart_group: str = ""  # components sharing one restart target share its limit; default: the name

    @property
    def group(self) -> str:
        return self.restart_group or self.name


@dataclass(frozen=True)
class ComponentState:
    name: str
    state: State
    detail: str
    since: dt.datetime
    gave_up: bool = False


@dataclass(frozen=True)
class Benchmark:
    at: dt.datetime
    rest_ms: float | None  # a signed REST round trip
    ledger_write_ms: float | None  # one committed write to the ledger database
    error: str = ""


@dataclass(frozen=True)
class HealthSummary:
    checked_at: dt.datetime | None
    components: tuple[ComponentState, ...]
    restarts_24h: int
    restarts_by_component: dict[str, int]
    benchmark: Benchmark | None = None
    resources: ResourceUse | None = None

    @property
    def ok(self) -> bool:
        return all(c.state in ("ok", "off") for c in self.components)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class _Track:
    state: State = "ok"
    detail: str = ""
    since: dt.datetime = field(default_factory=_utcnow)
    gave_up: bool = False
    seen: bool = False


class Supervisor:
    def __init__(
        self,
        components: list[Component],
        alert: Callable[[str, str, str], None],
        *,
        max_restarts_per_hour: int = 3,
        timeout_s: float = 10.0,
        restart_timeout_s: float = RESTART_TIMEOUT_S,
        clock: Callable[[], dt.datetime] = _utcnow,
    ):
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {names}")
        self.components = components
        self.alert = alert
        self.max_restarts_per_hour = max_restarts_per_hour
        self.timeout_s = timeout_s
        self.restart_timeout_s = restart_timeout_s
        self.clock = clock
        self._tracks = {c.name: _Track(since=clock()) for c in components}
        self._restarts: collections.deque[tuple[dt.datetime, str, str]] = collections.deque()  # (when, group, name)
        self.checked_at: dt.datetime | None = None
        self.benchmark: Benchmark | None = None
        self.resources: ResourceUse | None = None

    # -- probing ----------------------------------------------------------------------------------------------------
    async def _probe(self, component: Component) -> Probe:
        try:
            return await asyncio.wait_for(component.probe(), self.timeout_s)
        except TimeoutError:
            return Probe("down", f"no answer within {self.timeout_s:g}s (stuck)")
        except Exception as exc:  # a probe that fails says the component is not healthy, with the reason
            return Probe("down", f"{type(exc).__name__}: {exc}")

    def _restarts_in(self, group: str, window: dt.timedelta) -> int:
        since = self.clock() - window
        return sum(1 for when, g, _ in self._restarts if g == group and when >= since)

    async def check(self) -> HealthSummary:
        """Probe every component once (concurrently), restart and alert as needed; the summary afterwards."""
        probes = await asyncio.gather(*(self._probe(c) for c in self.components))
        for component, probe in zip(self.components, probes, strict=True):
            await self._handle(component, probe)
        self.checked_at = self.clock()
        self._forget_old()
        return self.summary()

    async def _handle(self, component: Component, probe: Probe) -> None:
        track = self._tracks[component.name]
        previous, first = track.state, not track.seen
        track.seen = True
        if probe.state != previous:
            track.since = self.clock()
        track.state, track.detail = probe.state, probe.detail
        if probe.state == "down":
            if component.restart is not None and not track.gave_up:
                await self._restart(component, track, probe.detail)
            elif previous != "down" or first:
                self._alert(component.name, "down", probe.detail)
            return
        if probe.state == "warning" and previous != "warning":
            self._alert(component.name, "warning", probe.detail)
        if probe.state == "ok" and previous in ("down", "warning") and not first:
            self._alert(component.name, "recovered", probe.detail)
        if probe.state in ("ok", "off"):
            track.gave_up = False

    async def _restart(self, component: Component, track: _Track, reason: str) -> None:
        assert component.restart is not None
        if self._restarts_in(component.group, dt.timedelta(hours=1)) >= self.max_restarts_per_hour:
            track.gave_up = True
            self._alert(component.name, "gave_up",
                        f"{reason}; {self.max_restarts_per_hour} restarts in the past hour")
            return
        self._restarts.append((self.clock(), component.group, component.name))
        try:
            await asyncio.wait_for(component.restart(), self.restart_timeout_s)
        except Exception as exc:
            self._alert(component.name, "restart_failed", f"{reason}; restart: {type(exc).__name__}: {exc}")
            return
        self._alert(component.name, "restarted", reason)

    def _alert(self, name: str, state: str, detail: str) -> None:
        (log.info if state == "recovered" else log.warning)("health: %s %s: %s", name, state, detail)
        try:
            self.alert(name, state, detail)
        except Exception:  # an alert path failing must not stop the checks
            log.exception("health alert for %s could not be sent", name)

    def _forget_old(self) -> None:
        horizon = self.clock() - dt.timedelta(hours=24)
        while self._restarts and self._restarts[0][0] < horizon:
            self._restarts.popleft()

    # -- reading ----------------------------------------------------------------------------------------------------
    def summary(self) -> HealthSummary:
        horizon = self.clock() - dt.timedelta(hours=24)
        recent = [name for when, _, name in self._restarts if when >= horizon]
        by_component = {name: recent.count(name) for name in dict.fromkeys(recent)}
        states = tuple(ComponentState(c.name, self._tracks[c.name].state, self._tracks[c.name].detail,
                                      self._tracks[c.name].since, self._tracks[c.name].gave_up)
                       for c in self.components)
        return HealthSummary(self.checked_at, states, len(recent), by_component, self.benchmark, self.resources)

    def state_of(self, name: str) -> State:
        return self._tracks[name].state

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Check every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:  # the supervisor must outlive any bug in one cycle
                log.exception("health check cycle failed")
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
