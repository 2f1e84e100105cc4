"""Engine events → Telegram messages, per user and per kind (on / silent / off).

Trading must never wait for Telegram: the bus hands events to the bot's loop without blocking the publisher,
``on_event`` only renders and enqueues, and one worker delivers from a bounded queue, retrying a failed send a
few times before dropping it with a log line. When the queue is full, new messages are dropped (and counted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.context import BotDeps, send_text
from trader.events import Event, EventBus

log = logging.getLogger(__name__)

QUEUE_SIZE = 500
RETRIES = 3
BACKOFF_S = 0.5
SEND_TIMEOUT_S = 10.0
MAX_FLOOD_WAITS = 5
PURPOSES = ("entry", "exit", "stop", "take_profit", "flatten")


@dataclass(frozen=True)
class Outgoing:
    chat_id: int
    text: str
    silent: bool
    kind: str


def _purpose(t: Translator, purpose: str) -> str:
    return t(f"purpose.{purpose}") if purpose in PURPOSES else purpose


def _pnl_suffix(t: Translator, pnl: Decimal | None) -> str:
    return "" if pnl is None else t("event.pnl_suffix", pnl=fmt.signed(pnl))


def render(t: Translator, event: Event) -> str:
    """One event as text in the user's language."""
    kind = event.kind
    e: Any = event
    if kind in ("order_placed", "order_filled"):
        return t(f"event.msg.{kind}", purpose=_purpose(t, e.purpose), pair=fmt.short_pair(e.pair),
                 side=t(f"side.{e.side}") if e.side in ("long", "short") else e.side,
                 amount=fmt.amount(e.amount) if e.amount is not None else "-", price=fmt.price(e.price),
                 pnl=_pnl_suffix(t, getattr(e, "realized_pnl", None)))
    if kind == "stop_moved":
        return t("event.msg.stop_moved", pair=fmt.short_pair(e.pair), old=fmt.price(e.old_price),
                 new=fmt.price(e.new_price), reason=e.reason or "-")
    if kind == "stop_hit":
        return t("event.msg.stop_hit", pair=fmt.short_pair(e.pair), price=fmt.price(e.price),
                 pnl=_pnl_suffix(t, e.realized_pnl))
    if kind == "liquidation_warning":
        return t("event.msg.liquidation_warning", pair=fmt.short_pair(e.pair), mark=fmt.price(e.mark_price),
                 liq=fmt.price(e.liquidation_price), distance=fmt.percent(e.distance))
    if kind == "risk_action":
        if not e.pair:  # account-wide (latency tiers, flatten): no "(-)" for a pair that is not there
            return t("event.msg.risk_action_account", action=e.action, reason=e.reason)
        return t("event.msg.risk_action", action=e.action, reason=e.reason, pair=fmt.short_pair(e.pair))
    if kind == "latency_tier":
        if e.p99_ms is None:  # the tier fell for lack of recent round trips: say so rather than "p99 -"
            return t("event.msg.latency_tier_unknown", old=e.old, new=e.new)
        return t("event.msg.latency_tier", old=e.old, new=e.new, p99=fmt.ms(e.p99_ms))
    if kind == "engine_state":
        state = t(f"engine_state.{e.state}") if e.state in ENGINE_STATES else e.state
        # No user acted (a risk rule, a restart): the system did, and is named so rather than "by -".
        return t("event.msg.engine_state", state=state, actor=e.actor or t("event.actor.system"))
    if kind == "error":
        return t("event.msg.error", message=e.message, where=e.where or "-")
    if kind == "health":
        return t("event.msg.health", component=health_word(t, "component", e.component),
                 state=health_word(t, "state", e.state), detail=t("health.detail", detail=e.detail) if e.detail else "")
    return t("event.msg.generic", kind=kind, details=str(event)[:500])


ENGINE_STATES = ("started", "stopped", "paused", "resumed", "flattening")
# Health alerts and the report's component lines (trader.monitoring.supervisor, bot.operations).
HEALTH_COMPONENTS = ("exchange", "streams", "engine", "database", "disk", "resources", "bot", "telegram", "backup")
HEALTH_STATES = ("ok", "off", "down", "warning", "recovered", "restarted", "restart_failed", "gave_up", "restored",
                 "failed")


def health_word(t: Translator, family: str, name: str) -> str:
    """A component or state name in the user's language; an unknown one as it is."""
    known = HEALTH_COMPONENTS if family == "component" else HEALTH_STATES
    return t(f"health.{family}.{name}") if name in known else name


def health_words(t: Translator, component: str, state: str) -> str:
    return t("report.component", component=health_word(t, "component", component),
             state=health_word(t, "state", state))


class Notifier:
    def __init__(self, deps: BotDeps, bot: Any, *, queue_size: int = QUEUE_SIZE, retries: int = RETRIES,
                 backoff_s: float = BACKOFF_S, send_timeout_s: float = SEND_TIMEOUT_S):
        self.deps = deps
        self.bot = bot
        self.retries = retries
        self.backoff_s = backoff_s
        self.send_timeout_s = send_timeout_s
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=queue_size)
        self.delivered = 0
        self.dropped = 0
        # Chats Telegram says we cannot write to (never opened, blocked): skipped until the user writes again,
        # so one absent user does not cost a failed request and a log line per event.
        self.unreachable: set[int] = set()
        # Telegram itself failing (network errors or timeouts until a message was dropped), cleared by the next
        # delivery; the e-mail route reads it to send what would have rung a phone by e-mail as well.
        self.failing = False
        self.on_undelivered: Callable[[Outgoing], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def attach(self, bus: EventBus, loop: asyncio.AbstractEventLoop) -> None:
        self._unsubscribe = bus.subscribe_on_loop(loop, self.on_event)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._worker(), name="telegram-notifier")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    # -- events in ----------------------------------------------------------------------------------------------------
    def recipients(self) -> dict[int, int | None]:
        """chat id → user id (None for the configured broadcast chat)."""
        chats: dict[int, int | None] = {uid: uid for uid in self.deps.access.known_users()}
        broadcast = self.deps.settings.telegram.chat_id
        if broadcast is not None and broadcast not in chats:
            chats[broadcast] = None
        return chats

    def on_event(self, event: Event) -> None:
        """Render for each recipient in their language and level; never waits, never raises."""
        try:
            for chat_id, user_id in self.recipients().items():
                if chat_id in self.unreachable:
                    continue
                settings = self.deps.user_settings.get(user_id) if user_id is not None \
                    else self.deps.user_settings.defaults(chat_id)
                level = settings.level(event.kind)
                if level == "off":
                    continue
                text = render(self.deps.catalogs.translator(settings.language), event)
                self.enqueue(Outgoing(chat_id, self.deps.redactor(text), level == "silent", event.kind))
        except Exception:
            log.exception("notification for %s could not be prepared", event.kind)

    def enqueue(self, item: Outgoing) -> bool:
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("notification queue full: dropped a %s message to %s", item.kind, item.chat_id)
            return False

    # -- messages out -------------------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._deliver(item)
            except Exception:
                log.exception("notification worker: unexpected failure")
            finally:
                self.queue.task_done()

    async def _deliver(self, item: Outgoing) -> None:
        failures = flood_waits = 0
        while failures <= self.retries and flood_waits <= MAX_FLOOD_WAITS:
            try:
                await asyncio.wait_for(send_text(self.bot, item.chat_id, item.text, silent=item.silent),
                                       self.send_timeout_s)
                self.delivered += 1
                self.failing = False
                return
            except RetryAfter as exc:  # flood control: wait as told; not a failure, but not forever either
                flood_waits += 1
                delay = exc.retry_after if isinstance(exc.retry_after, int | float) else \
                    exc.retry_after.total_seconds()
                await asyncio.sleep(float(delay))
            except (Forbidden, BadRequest) as exc:  # blocked, chat never opened, bad text: retrying cannot help
                if isinstance(exc, Forbidden) or "chat not found" in str(exc).lower():
                    self.unreachable.add(item.chat_id)
                log.warning("notification to %s dropped: %s", item.chat_id, exc)
                self.dropped += 1
                return
            except (NetworkError, TelegramError, TimeoutError) as exc:
                failures += 1
                log.info("notification to %s failed (attempt %d): %s", item.chat_id, failures, exc)
                if failures <= self.retries:
                    await asyncio.sleep(self.backoff_s * 2 ** (failures - 1))
        self.dropped += 1
        log.warning("notification to %s dropped after %d failures and %d flood waits: %s", item.chat_id, failures,
                    flood_waits, item.text[:80].replace("\n", " "))
        if failures > self.retries:
            self.failing = True
            if self.on_undelivered is not None:
                try:
                    self.on_undelivered(item)
                except Exception:  # the fallback failing must not end the worker
                    log.exception("fallback for an undelivered notification failed")

    async def drain(self, timeout: float = 10.0) -> None:
        """Until everything queued was delivered or dropped (tests, shutdown)."""
        await asyncio.wait_for(self.queue.join(), timeout)
