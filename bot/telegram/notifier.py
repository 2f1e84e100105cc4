"""Engine events → Telegram messages, per user and per kind (on / silent / off).

Trading must never wait for Telegram: the bus hands events to the bot's loop without blocking the publisher,
``on_event`` only groups, renders and enqueues, and one worker delivers from a bounded queue, retrying a failed
send a few times before dropping it with a log line. When the queue is full, new messages are dropped (and counted).

One message per trade event, not per order: the events of one trade (pair and trade id) that arrive together —
entry placed, entry filled, stop placed, three targets placed — are held for ``bundle_s`` of quiet (at most
``bundle_max_s``) and told as one: the entry with side, size, price, stop and targets; an exit with its PnL; a stop
moved. The orders behind it are a tap away (a Details button, bound to the user like every button). Engine state
changes that arrive together are told once, naming who acted: a flatten's pause is the user's, not the system's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import CallbackContext, CallbackQueryHandler

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.buttons import Kind
from bot.telegram.context import BotDeps, Caller, deps_of, send_text
from bot.telegram.market_text import MARKET_RULES
from bot.telegram.market_text import action_text as market_action_text
from bot.telegram.risk_text import decision_text
from trader.events import EngineStateChanged, Event, EventBus, OrderFilled, OrderPlaced, StopHit, StopMoved

log = logging.getLogger(__name__)

QUEUE_SIZE = 500
RETRIES = 3
BACKOFF_S = 0.5
SEND_TIMEOUT_S = 10.0
MAX_FLOOD_WAITS = 5
BUNDLE_S = 0.8  # quiet time that ends a trade's burst of events
BUNDLE_MAX_S = 4.0  # a burst is told after this long however busy it stays
DETAILS_TTL_S = 24 * 3600.0
PURPOSES = ("entry", "exit", "stop", "take_profit", "flatten")
TRADE_KINDS = ("order_placed", "order_filled", "stop_moved", "stop_hit")
LEVEL_RANK = {"off": 0, "silent": 1, "on": 2}
DETAILS = Kind("nd", "d", "notification_button", "event.details.expired")


@dataclass(frozen=True)
class Outgoing:
    chat_id: int
    text: str
    silent: bool
    kind: str
    details: str | None = None  # posted with a Details button that shows this text
    user_id: int | None = None


@dataclass
class _Burst:
    events: list[Event] = field(default_factory=list)
    first: float = 0.0
    timer: asyncio.TimerHandle | None = None


def _purpose(t: Translator, purpose: str) -> str:
    return t(f"purpose.{purpose}") if purpose in PURPOSES else purpose


def _pnl_suffix(t: Translator, pnl: Decimal | None) -> str:
    return "" if pnl is None else t("event.pnl_suffix", pnl=fmt.signed(pnl))


def risk_words(t: Translator, action: str, reason: str) -> tuple[str, str]:
    """A risk action's name and reason in the user's language where they are known words."""
    word = t(f"risk.action.{action}") if action in RISK_ACTIONS else action
    found = _TIER_REASON.match(reason or "")
    if found and found.group(1) in LATENCY_TIERS:
        reason = t("risk.reason.latency_tier", tier=tier_word(t, found.group(1)))
    elif reason in RISK_REASONS:
        reason = t(f"risk.reason.{RISK_REASONS[reason]}")
    return word, reason


def actor_text(t: Translator, actor: str, names: Mapping[int, str] | None = None) -> str:
    """Who acted, as a person reads it: a Telegram user by name, else the part of the system."""
    if not actor:
        return t("event.actor.system")
    source, _, who = actor.partition(":")
    if source == "telegram" and who.isdigit():
        name = (names or {}).get(int(who))
        return t("event.actor.user", name=name) if name else t("event.actor.user_id", id=who)
    return t(f"event.actor.{source}") if source in ACTOR_SOURCES and not who else actor


def render(t: Translator, event: Event, names: Mapping[int, str] | None = None) -> str:
    """One event as text in the user's language."""
    kind = event.kind
    e: Any = event
    if kind in ("order_placed", "order_filled"):
        return t(f"event.msg.{kind}", purpose=_purpose(t, e.purpose), pair=fmt.short_pair(e.pair),
                 side=t(f"side.{e.side}") if e.side in ("long", "short") else e.side,
                 amount=fmt.amount(e.amount) if e.amount is not None else "-", price=fmt.price(e.price),
                 pnl=_pnl_suffix(t, getattr(e, "realized_pnl", None)))
    if kind == "stop_moved":
        if not e.reason:  # no reason given: none shown, rather than "(-)"
            return t("event.msg.stop_moved_plain", pair=fmt.short_pair(e.pair), old=fmt.price(e.old_price),
                     new=fmt.price(e.new_price))
        reason = t(f"stop.reason.{e.reason}") if e.reason in STOP_REASONS else e.reason
        return t("event.msg.stop_moved", pair=fmt.short_pair(e.pair), old=fmt.price(e.old_price),
                 new=fmt.price(e.new_price), reason=reason)
    if kind == "stop_hit":
        return t("event.msg.stop_hit", pair=fmt.short_pair(e.pair), price=fmt.price(e.price),
                 pnl=_pnl_suffix(t, e.realized_pnl))
    if kind == "liquidation_warning":
        return t("event.msg.liquidation_warning", pair=fmt.short_pair(e.pair), mark=fmt.price(e.mark_price),
                 liq=fmt.price(e.liquidation_price), distance=fmt.percent(e.distance))
    if kind == "risk_action":
        if getattr(e, "rule", "") in MARKET_RULES:  # liquidity and maintenance: worded from their numbers
            return market_action_text(t, e.action, e.pair, e.rule, e.values)
        action, reason = risk_words(t, e.action, e.reason)
        if not e.pair:  # account-wide (latency tiers, flatten): no "(-)" for a pair that is not there
            return t("event.msg.risk_action_account", action=action, reason=reason)
        return t("event.msg.risk_action", action=action, reason=reason, pair=fmt.short_pair(e.pair))
    if kind == "risk_rule":
        return decision_text(t, e.rule, e.effect, e.pair, e.side, e.values)
    if kind == "latency_tier":
        old, new = tier_word(t, e.old), tier_word(t, e.new)
        if e.p99_ms is None:  # the tier fell for lack of recent round trips: say so rather than "p99 -"
            return t("event.msg.latency_tier_unknown", old=old, new=new)
        return t("event.msg.latency_tier", old=old, new=new, p99=fmt.ms(e.p99_ms))
    if kind == "engine_state":
        # No user acted (a risk rule, a restart): the system did, and is named so rather than "by -".
        return t("event.msg.engine_state", state=state_word(t, e.state), actor=actor_text(t, e.actor, names))
    if kind == "error":
        return t("event.msg.error", message=e.message, where=e.where or "-")
    if kind == "health":
        return t("event.msg.health", component=health_word(t, "component", e.component),
                 state=health_word(t, "state", e.state), detail=t("health.detail", detail=e.detail) if e.detail else "")
    return t("event.msg.generic", kind=kind, details=str(event)[:500])


ENGINE_STATES = ("started", "stopped", "paused", "resumed", "flattening", "running", "starting", "stopping",
                 "error", "restarted")
LATENCY_TIERS = fmt.LATENCY_TIERS
tier_word = fmt.tier_word
_TIER_REASON = re.compile(r"^latency tier (\w+)$")
RISK_ACTIONS = ("size_halved", "size_restored", "entries_blocked", "entries_resumed", "emergency_flatten",
                "emergency_block", "emergency_close", "stop_replaced", "account_resync", "exit_unknown",
                "flatten_incomplete", "flatten_resumed", "ledger_mismatch")
RISK_REASONS = {"latency above the emergency threshold": "latency_emergency",
                "latency above the emergency threshold; positions kept": "latency_emergency_kept"}
STOP_REASONS = ("trailing", "breakeven", "take_profit", "manual")
ACTOR_SOURCES = ("telegram", "cli", "engine", "health", "system", "test")


def state_word(t: Translator, state: str) -> str:
    return t(f"engine_state.{state}") if state in ENGINE_STATES else state
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


def _avg(fills: list[Any]) -> tuple[Decimal, Decimal | None]:
    amount = sum((f.amount for f in fills), Decimal(0))
    price = sum((f.amount * f.price for f in fills), Decimal(0)) / amount if amount else None
    return amount, price


def _pnl(fills: list[Any]) -> Decimal | None:
    known = [f.realized_pnl for f in fills if f.realized_pnl is not None]
    return sum(known, Decimal(0)) if known else None


def _side(t: Translator, side: str) -> str:
    return t(f"side.{side}") if side in ("long", "short") else side


def compose(t: Translator, events: list[Event], names: Mapping[int, str] | None = None) -> tuple[str, str | None]:
    """One trade's burst of events as one message: (text, the orders behind it, or None when it is one event)."""
    if len(events) == 1:
        return render(t, events[0], names), None
    fills = [e for e in events if isinstance(e, OrderFilled)]
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    entries = [f for f in fills if f.purpose == "entry"]
    exits = [f for f in fills if f.purpose != "entry"]
    stops = [p for p in placed if p.purpose == "stop"]
    moved = [e for e in events if isinstance(e, StopMoved)]
    hits = [e for e in events if isinstance(e, StopHit)]
    pair = fmt.short_pair(getattr(events[0], "pair", ""))
    stop_price = (moved[-1].new_price if moved else stops[-1].price) if (moved or stops) else None
    if entries:
        amount, price = _avg(entries)
        targets = [p.price for p in placed if p.purpose == "take_profit" and p.price is not None]
        text = t("event.msg.trade_entry", pair=pair, side=_side(t, entries[0].side), amount=fmt.amount(amount),
                 price=fmt.price(price),
                 stop=t("event.trade.stop", price=fmt.price(stop_price)) if stop_price is not None else "",
                 targets=t("event.trade.targets", prices=" / ".join(fmt.price(p) for p in sorted(
                     targets, reverse=entries[0].side == "short"))) if targets else "")
    elif exits:
        amount, price = _avg(exits)
        fields = dict(pair=pair, side=_side(t, exits[0].side), amount=fmt.amount(amount), price=fmt.price(price),
                      pnl=_pnl_suffix(t, _pnl(exits)))
        if hits or all(f.purpose == "stop" for f in exits):
            text = t("event.msg.trade_stop", **fields)
        else:
            purposes = {f.purpose for f in exits}
            purpose = purposes.pop() if len(purposes) == 1 else "exit"
            text = t("event.msg.order_filled", purpose=_purpose(t, purpose), **fields)
        if stop_price is not None and not hits:  # a target filled and the stop followed (e.g. to break-even)
            text += t("event.trade.stop_now", price=fmt.price(stop_price))
    elif moved:
        text = render(t, moved[-1], names)
    elif hits:
        text = render(t, hits[-1], names)
    else:
        text = render(t, events[0], names)
    details = "\n".join([text, "", t("event.details.title"), *(f"• {render(t, e, names)}" for e in events)])
    return text, details


def _engine_burst(t: Translator, events: list[Event], names: Mapping[int, str] | None) -> str:
    """Engine state changes that came together (a flatten pauses entries, then flattens; a restart stops and runs):
    one line, naming the user who acted for the changes no one is named for."""
    actor = next((e.actor for e in events if getattr(e, "actor", "")), "")
    states: list[str] = []
    for e in events:
        state = getattr(e, "state", "")
        if state == "running" and states and states[-1] == "stopped":
            states[-1] = "restarted"
        elif state not in states:
            states.append(state)
    return t("event.msg.engine_state", state=t("event.states_sep").join(state_word(t, s) for s in states),
             actor=actor_text(t, actor, names))


def _burst_key(event: Event) -> tuple[Any, ...] | None:
    if event.kind in TRADE_KINDS:
        return ("trade", getattr(event, "pair", None), getattr(event, "trade_id", None))
    if isinstance(event, EngineStateChanged):
        return ("engine",)
    return None


class Notifier:
    def __init__(self, deps: BotDeps, bot: Any, *, queue_size: int = QUEUE_SIZE, retries: int = RETRIES,
                 backoff_s: float = BACKOFF_S, send_timeout_s: float = SEND_TIMEOUT_S, bundle_s: float = BUNDLE_S,
                 bundle_max_s: float = BUNDLE_MAX_S):
        self.deps = deps
        self.bot = bot
        self.retries = retries
        self.backoff_s = backoff_s
        self.send_timeout_s = send_timeout_s
        self.bundle_s = bundle_s
        self.bundle_max_s = bundle_max_s
        self._bursts: dict[tuple[Any, ...], _Burst] = {}
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
        for burst in self._bursts.values():
            if burst.timer is not None:
                burst.timer.cancel()
        self._bursts.clear()
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
        """Group a trade's (or the engine's) burst, or tell the event at once; never waits, never raises."""
        try:
            key = _burst_key(event)
            if key is None or self.bundle_s <= 0:
                self._tell([event])
                return
            burst = self._bursts.get(key)
            if burst is None:
                burst = self._bursts[key] = _Burst(first=time.monotonic())
            burst.events.append(event)
            if burst.timer is not None:
                burst.timer.cancel()
            left = self.bundle_max_s - (time.monotonic() - burst.first)
            burst.timer = asyncio.get_running_loop().call_later(max(0.0, min(self.bundle_s, left)), self._flush, key)
        except Exception:
            log.exception("notification for %s could not be prepared", event.kind)

    def _flush(self, key: tuple[Any, ...]) -> None:
        burst = self._bursts.pop(key, None)
        if burst is not None:
            if burst.timer is not None:
                burst.timer.cancel()
            self._tell(burst.events)

    def flush_all(self) -> None:
        for key in list(self._bursts):
            self._flush(key)

    def _tell(self, events: list[Event]) -> None:
        """Render one message per recipient, in their language, at the loudest level they chose among the
        events' kinds (a burst no one wants to hear about is not sent)."""
        try:
            names = self.deps.access.names
            engine = all(isinstance(e, EngineStateChanged) for e in events)
            for chat_id, user_id in self.recipients().items():
                if chat_id in self.unreachable:
                    continue
                settings = self.deps.user_settings.get(user_id) if user_id is not None \
                    else self.deps.user_settings.defaults(chat_id)
                level = max((settings.level(e.kind) for e in events), key=LEVEL_RANK.__getitem__)
                if level == "off":
                    continue
                t = self.deps.catalogs.translator(settings.language)
                if engine and len(events) > 1:
                    text, details = _engine_burst(t, events, names), None
                else:
                    text, details = compose(t, events, names)
                if user_id is None:
                    details = None  # a broadcast chat: no one to bind a button to
                kind = next((e.kind for e in events if e.kind == "order_filled"), events[0].kind)
                self.enqueue(Outgoing(chat_id, self.deps.redactor(text), level == "silent", kind,
                                      self.deps.redactor(details) if details else None, user_id))
        except Exception:
            log.exception("notification for %s could not be prepared", events[0].kind if events else "-")

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
                await asyncio.wait_for(self._send(item), self.send_timeout_s)
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

    async def _send(self, item: Outgoing) -> None:
        if item.details is None or item.user_id is None:
            await send_text(self.bot, item.chat_id, item.text, silent=item.silent)
            return
        store = self.deps.buttons
        entry = store.add(DETAILS, None, ttl_s=DETAILS_TTL_S, payload=item.details, keep_text=True,
                          user_id=item.user_id, chat_id=item.chat_id)
        t = self.deps.catalogs.translator(self.deps.user_settings.get(item.user_id).language)
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(t("event.details.button"),
                                                               callback_data=DETAILS.data(entry.nonce, "d"))]])
        try:
            message = await send_text(self.bot, item.chat_id, item.text, keyboard, silent=item.silent)
        except BaseException:
            store.take(entry.nonce, "expired")
            raise
        store.bind(entry, message.message_id)

    async def drain(self, timeout: float = 10.0) -> None:
        """Until everything queued was delivered or dropped (tests, shutdown); bursts still gathering are told
        now."""
        await asyncio.sleep(0)  # events handed over from other threads land first
        self.flush_all()
        await asyncio.wait_for(self.queue.join(), timeout)


async def on_details(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
    """A notification's Details: the message shows the orders behind it (once; the button goes)."""
    deps = deps_of(context)
    query = update.callback_query
    caller: Caller | None = getattr(context, "caller", None)
    if query is None or caller is None:
        return
    t = deps.catalogs.translator(caller.settings.language)
    claimed = await deps.buttons.claim(deps, caller, query, t, DETAILS)
    if claimed is None:
        return
    entry, _ = claimed
    await query.answer()
    try:
        await query.edit_message_text(deps.redactor(entry.payload)[:4096])
    except BadRequest as exc:
        log.info("details not shown (%s)", exc)


def details_handler() -> CallbackQueryHandler[Any, Any]:
    return CallbackQueryHandler(on_details, pattern=rf"^{DETAILS.prefix}:")
