"""Confirm / Cancel for risky actions.

A command declared ``risk="confirm"`` (registry.py) cannot act by itself: its handler returns an ``Ask`` (the
question and what Confirm would do) or answers plainly, and while it runs the service refuses every call made on
someone's behalf (every call that takes an ``Actor``). The registry posts the ``Ask`` here. The buttons live in
the one button store (buttons.py: ``cf:<nonce>:y``, bound to the user, chat and message that asked, single use,
60 seconds). On a valid press the role and the state the question was asked about are checked again, and the
question is edited into the outcome. Anything else (forged data, an unknown, expired or used nonce, another user's
press) is refused and audited by the store.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import CallbackContext, CallbackQueryHandler

from bot.i18n import Translator
from bot.telegram.buttons import Kind
from bot.telegram.context import BotDeps, Caller, Request, deps_of, send_text, service_error_text
from bot.telegram.formatting import split_text
from bot.telegram.permissions import at_least
from trader.exchange.errors import ExchangeError
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError

log = logging.getLogger(__name__)

TTL_S = 60.0
PREFIX = "cf"
KIND = Kind(PREFIX, "[yn]", "confirm", "confirm.expired")

Outcome = Callable[[Caller, Translator], Awaitable[str]]


@dataclass
class Ask:
    """A risky command's question: the text, the audited action and its arguments, and what Confirm runs.

    ``state`` is read when asking and again on Confirm; a change means the question is stale."""

    question: str
    action: str
    arguments: dict[str, Any]
    run: Outcome
    state: Callable[[], object] | None = None


@dataclass
class Question:
    """What a posted Confirm button stands for (the store's payload)."""

    action: str
    arguments: dict[str, Any]
    min_role: str
    run: Outcome
    state: Callable[[], object] | None
    expected: object


class UnconfirmedAction(RuntimeError):
    """A confirm command's handler tried to act before the user confirmed (a programming error)."""


class AskOnly:
    """The service as a ``risk="confirm"`` handler sees it while it prepares its question: reads pass, anything
    done on someone's behalf (a call carrying an ``Actor``) is refused. ``lift()`` after the question is posted,
    so the Confirm press (which runs the ``Ask``) reaches the real service through the same object."""

    def __init__(self, service: Any):
        self._service = service
        self._asking = True

    def lift(self) -> None:
        self._asking = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._service, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._asking and any(isinstance(a, Actor) for a in (*args, *kwargs.values())):
                raise UnconfirmedAction(f"{name} called before the user confirmed")
            return attr(*args, **kwargs)

        return guarded


def keyboard(t: Translator, nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t("confirm.yes"), callback_data=KIND.data(nonce, "y")),
                                  InlineKeyboardButton(t("confirm.no"), callback_data=KIND.data(nonce, "n"))]])


async def _read_state(state: Callable[[], object]) -> object:
    """The state a question is about; the service's reads are coroutines (it may live on another loop)."""
    value = state()
    return await value if inspect.isawaitable(value) else value


async def post(request: Request, ask: Ask) -> None:
    """Post the question with Confirm / Cancel; ``ask.run`` does the action on a valid Confirm."""
    declared = request.deps.registry.get(request.command)
    min_role = declared.min_role if declared else "admin"
    store = request.deps.buttons
    question = Question(ask.action, ask.arguments, min_role, ask.run, ask.state,
                        await _read_state(ask.state) if ask.state else None)
    entry = store.add(KIND, request.caller, ttl_s=store.confirm_ttl_s, payload=question,
                      audit_as=(ask.action, ask.arguments))
    text = ask.question + "\n\n" + request.t("confirm.expires", seconds=int(store.confirm_ttl_s))
    message = await request.reply(text, keyboard(request.t, entry.nonce))
    store.bind(entry, message.message_id)


async def ask(request: Request, question: str, action: str, arguments: dict[str, Any], run: Outcome,
              state: Callable[[], object] | None = None) -> None:
    """A confirmation asked from a button press (hyperopt's Apply); commands return an ``Ask`` instead."""
    await post(request, Ask(question, action, arguments, run, state))


async def on_press(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
    deps = deps_of(context)
    query = update.callback_query
    caller: Caller | None = getattr(context, "caller", None)
    if query is None or caller is None:
        return
    t = deps.catalogs.translator(caller.settings.language)
    claimed = await deps.buttons.claim(deps, caller, query, t, KIND)
    if claimed is None:
        return
    entry, choice = claimed
    pending: Question = entry.payload
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
    if pending.state is not None and await _read_state(pending.state) != pending.expected:
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
