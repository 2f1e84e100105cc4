"""Typed engine events and the bus that carries them to subscribers (the bot, logs, tests).

The engine publishes from its own thread; a subscriber that lives on another event loop must hop over itself
(``EventBus.subscribe_on_loop`` does it). A failing subscriber is logged and never stops trading.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True, kw_only=True)
class Event:
    time: dt.datetime = field(default_factory=_now)

    @property
    def kind(self) -> str:
        """Stable name used for notification preferences and message keys (e.g. ``entry_filled``)."""
        return _KINDS[type(self)]


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(Event):
    pair: str
    side: str  # long | short (the position side the order serves)
    purpose: str  # entry | exit | stop | take_profit | flatten
    client_order_id: str
    amount: Decimal | None
    price: Decimal | None = None
    trade_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class OrderFilled(Event):
    pair: str
    side: str
    purpose: str
    client_order_id: str
    amount: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    realized_pnl: Decimal | None = None
    trade_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StopMoved(Event):
    pair: str
    trade_id: int | None
    old_price: Decimal | None
    new_price: Decimal
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class StopHit(Event):
    pair: str
    trade_id: int | None
    price: Decimal
    realized_pnl: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class LiquidationWarning(Event):
    pair: str
    mark_price: Decimal
    liquidation_price: Decimal
    distance: Decimal  # fraction of mark price


@dataclass(frozen=True, kw_only=True)
class RiskAction(Event):
    action: str  # e.g. size_halved, entries_blocked, emergency_close
    reason: str
    pair: str | None = None
    rule: str = ""  # the rule that decided (liquidity, maintenance, ...), when one did
    values: dict[str, Any] = field(default_factory=dict)  # its numbers (what the notifier words and the audit keeps)


@dataclass(frozen=True, kw_only=True)
class RiskRuleHit(Event):
    """A risk rule (trader/risk) blocked or shrank an entry: its name and the numbers it decided on."""

    rule: str  # trader.risk.rules.RULES, or a market-side rule (liquidity, maintenance)
    effect: str  # blocked | shrunk
    pair: str | None = None
    side: str | None = None  # long | short
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LatencyTierChanged(Event):
    old: str
    new: str
    p99_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class EngineStateChanged(Event):
    state: str  # started | stopped | paused | resumed | flattening
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class EngineError(Event):
    message: str
    where: str = ""


@dataclass(frozen=True, kw_only=True)
class HealthAlert(Event):
    """A component's health changed, it was restarted, or an operation (backup, database recovery) needs notice."""

    component: str  # exchange | streams | engine | database | disk | resources | bot | backup
    state: str  # down | warning | recovered | restarted | restart_failed | gave_up | restored | failed
    detail: str = ""


_KINDS: dict[type, str] = {
    OrderPlaced: "order_placed",
    OrderFilled: "order_filled",
    StopMoved: "stop_moved",
    StopHit: "stop_hit",
    LiquidationWarning: "liquidation_warning",
    RiskAction: "risk_action",
    RiskRuleHit: "risk_rule",
    LatencyTierChanged: "latency_tier",
    EngineStateChanged: "engine_state",
    EngineError: "error",
    HealthAlert: "health",
}
EVENT_KINDS = tuple(_KINDS.values())

Subscriber = Callable[[Event], Any]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on the publisher's thread. Returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def subscribe_on_loop(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[Event], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Deliver events to ``callback`` on ``loop`` (e.g. the bot's), whatever thread publishes them."""

        def hop(event: Event) -> None:
            def run() -> None:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    task = loop.create_task(result)
                    task.add_done_callback(_log_failure)

            if not loop.is_closed():
                loop.call_soon_threadsafe(run)

        return self.subscribe(hop)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break trading
                log.exception("event subscriber failed on %s", event.kind)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("event subscriber task failed", exc_info=task.exception())
