"""Confirm / Cancel for risky actions.

The button carries only an opaque nonce (``cf:<nonce>:y``); what it would do lives here, bound to the user and
chat that asked, for 60 seconds, usable once. On press the role and the state the question was asked about are
checked again, and the question is edited into the outcome. Anything else (forged data, an unknown, expired or
used nonce, another user's press) is refused and audited.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import CallbackContext, CallbackQueryHandler

from bot.i18n import Translator
from bot.telegram.context import BotDeps, Caller, Request, deps_of, send_text
from bot.telegram.formatting import split_text
from bot.telegram.permissions import at_least
from bot.telegram.registry import service_error_text
from trader.exchange.errors import ExchangeError
from trader.service.errors import ServiceError

log = logging.getLogger(__name__)

TTL_S = 60.0
PREFIX = "cf"
_DATA = re.compile(rf"^{PREFIX}:([A-Za-z0-9_-]{{16}}):([yn])$")
MAX_PENDING = 1000
MAX_REMEMBERED_USED = 5000

Outcome = Callable[[Caller, Translator], Awaitable[str]]


@dataclass
class Pending:
    nonce: str
    user_id: int
    chat_id: int
    action: str
    arguments: dict[str, Any]
    min_role: str
    run: Outcome
    created: float
    state: Callable[[], object] | None = None  # re-read on press; a change means the question is stale
    expected: object = None
    message_id: int | None = field(default=None)


class Confirmations:
    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._spent: OrderedDict[str, str] = OrderedDict()  # nonce → "used" | "expired", bounded

    def create(self, caller: Caller, action: str, arguments: dict[str, Any], min_role: str, run: Outcome,
               state: Callable[[], object] | None = None) -> Pending:
        self._sweep()
        nonce = secrets.token_urlsafe(12)  # 16 characters, 96 bits: not guessable within 60 s
        pending = Pending(nonce, caller.user_id, caller.chat_id, action, arguments, min_role, run, self._clock(),
                          state, state() if state else None)
        self._pending[nonce] = pending
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return pending

    def peek(self, nonce: str) -> Pending | None:
        return self._pending.get(nonce)

    def take(self, nonce: str) -> Pending:
        pending = self._pending.pop(nonce)
        self._spend(nonce, "used")
        return pending

    def spent(self, nonce: str) -> str | None:
        return self._spent.get(nonce)

    def _spend(self, nonce: str, how: str) -> None:
        self._spent[nonce] = how
        while len(self._spent) > MAX_REMEMBERED_USED:
            self._spent.popitem(last=False)

    def expired(self, pending: Pending) -> bool:
        return self._clock() - pending.created > self.ttl_s

    def _sweep(self) -> None:
        for nonce in [n for n, p in self._pending.items() if self.expired(p)]:
            self._pending.pop(nonce, None)
            self._spend(nonce, "expired")

    def __len__(self) -> int:
        return len(self._pending)


def keyboard(t: Translator, nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t("confirm.yes"), callback_data=f"{PREFIX}:{nonce}:y"),
                                  InlineKeyboardButton(t("confirm.no"), callback_data=f"{PREFIX}:{nonce}:n")]])


async def ask(request: Request, question: str, action: str, arguments: dict[str, Any], run: Outcome,
              state: Callable[[], object] | None = None) -> None:
    """Post the question with Confirm / Cancel; `run` does the action on a valid Confirm and returns the outcome."""
    declared = request.deps.registry.get(request.command)
    min_role = declared.min_role if declared else "admin"
    pending = request.deps.confirmations.create(request.caller, action, arguments, min_role, run, state)
    text = question + "\n\n" + request.t("confirm.expires", seconds=int(request.deps.confirmations.ttl_s))
    message = await request.reply(text, keyboard(request.t, pending.nonce))
    pending.message_id = message.message_id


async def on_press(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
    deps = deps_of(context)
    query = update.callback_query
    caller: Caller | None = getattr(context, "caller", None)
    if query is None or caller is None:
        return
    t = deps.catalogs.translator(caller.settings.language)
    data = query.data or ""
    match = _DATA.match(data)

    async def refuse(reason: str, key: str, *, arguments: dict[str, Any] | None = None) -> None:
        await deps.audit_async(caller.actor, "confirm", {"reason": reason, "data": data[:64], **(arguments or {})},
                               "denied", reason)
        await query.answer(deps.redactor(t(key)), show_alert=True)

    if match is None:
        await refuse("forged", "confirm.invalid")
        return
    nonce, choice = match.groups()
    pending = deps.confirmations.peek(nonce)
    if pending is None:
        spent = deps.confirmations.spent(nonce)
        reason = {"used": "replayed", "expired": "expired"}.get(spent or "", "forged")
        await refuse(reason, {"replayed": "confirm.used", "expired": "confirm.expired"}.get(reason, "confirm.invalid"))
        return
    message = query.message
    message_id = message.message_id if message is not None else None
    if pending.user_id != caller.user_id or pending.chat_id != caller.chat_id or \
            (pending.message_id is not None and message_id != pending.message_id):
        # Not consumed: the rightful owner can still answer their own question.
        await refuse("foreign", "confirm.not_yours", arguments={"action": pending.action})
        return
    deps.confirmations.take(nonce)
    if deps.confirmations.expired(pending):
        await deps.audit_async(caller.actor, pending.action, pending.arguments, "refused", "confirmation expired")
        await query.answer(deps.redactor(t("confirm.expired")))
        await _edit(query, deps, t("confirm.expired"))
        return
    if choice == "n":
        await query.answer(deps.redactor(t("confirm.cancelled")))
        await _edit(query, deps, t("confirm.cancelled"))
        return
    role = deps.access.role_of(caller.user_id)
    if not at_least(role, pending.min_role):
        await deps.audit_async(caller.actor, pending.action, pending.arguments, "denied", "role changed")
        await query.answer(deps.redactor(t("confirm.role_changed")), show_alert=True)
        await _edit(query, deps, t("confirm.role_changed"))
        return
    if pending.state is not None and pending.state() != pending.expected:
        await deps.audit_async(caller.actor, pending.action, pending.arguments, "refused", "state changed")
        await query.answer(deps.redactor(t("confirm.stale")), show_alert=True)
        await _edit(query, deps, t("confirm.stale"))
        return
    await query.answer(deps.redactor(t("confirm.working")))
    try:
        outcome = await pending.run(caller, t)
    except ServiceError as exc:
        outcome = service_error_text(t, exc)
    except ExchangeError as exc:
        outcome = t("error.exchange", detail=str(exc))
    except Exception:
        log.exception("confirmed %s failed", pending.action)
        outcome = t("error.internal")
    await _edit(query, deps, outcome)


async def _edit(query: Any, deps: BotDeps, text: str) -> None:
    """Turn the question into the outcome; what does not fit in one message follows as new messages."""
    first, *rest = split_text(deps.redactor(text))
    try:
        await query.edit_message_text(first)
    except BadRequest as exc:  # the question was deleted meanwhile: say it anew
        log.info("could not edit the confirmation (%s); sending the outcome instead", exc)
        rest = [first, *rest]
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    for piece in rest:
        await send_text(query.get_bot(), chat_id, piece)


def handler() -> CallbackQueryHandler[Any, Any]:
    return CallbackQueryHandler(on_press)
