"""The audit keeps every risk rule decision (RiskRuleHit events): who acted (the engine), which rule, on what
pair, and its numbers — beside the people's actions, so /audit shows why an entry was refused or made smaller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from trader.events import Event, EventBus, RiskRuleHit
from trader.persistence.audit import Actor

log = logging.getLogger(__name__)
ENGINE = Actor("engine")


def audit_risk_rules(bus: EventBus, audit: Any, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Record each RiskRuleHit in ``audit`` (an AuditLog) from ``loop``, off the publisher's (strategy) thread, the
    write itself in a worker thread. Returns the unsubscribe function."""
    async def on_event(event: Event) -> None:
        if not isinstance(event, RiskRuleHit):
            return
        arguments = {"rule": event.rule, "effect": event.effect, "pair": event.pair, "side": event.side,
                     **{f"v_{k}": v for k, v in event.values.items()}}
        outcome = "refused" if event.effect == "blocked" else "ok"
        try:
            await asyncio.to_thread(audit.record, ENGINE, "risk_rule", arguments, outcome,
                                    f"{event.rule} {event.effect}")
        except Exception:  # the audit failing must not take the notification path with it
            log.exception("risk decision not audited")

    return bus.subscribe_on_loop(loop, on_event)
