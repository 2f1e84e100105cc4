"""The one gate in front of every update: who is asking, from where, and may they.

Roles come from the config file (``telegram.users``) and from grants made with /users; the config wins, so the
file stays the way to recover control. Everyone else is a stranger: one polite refusal, audited, then ignored
cheaply (a stranger flooding the bot must not flood the audit log or the database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, CallbackContext

from bot.i18n import language_from_client
from bot.telegram import menu
from bot.telegram.context import Caller, deps_of
from bot.telegram.store import RoleStore
from trader.persistence.audit import Actor

log = logging.getLogger(__name__)

ROLES = ("viewer", "trader", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
STRANGER_AUDIT_INTERVAL_S = 600.0
MAX_TRACKED_STRANGERS = 10_000


def at_least(role: str | None, minimum: str) -> bool:
    return role is not None and RANK.get(role, 0) >= RANK[minimum]


@dataclass
class _Stranger:
    refused: bool = False
    last_audit: float = float("-inf")
    attempts: int = 0


class AccessControl:
    def __init__(self, config_users: dict[int, str], roles: RoleStore, *, allow_groups: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 audit_interval_s: float = STRANGER_AUDIT_INTERVAL_S):
        self.config_users = dict(config_users)
        self.roles = roles
        self.allow_groups = allow_groups
        self._clock = clock
        self._audit_interval = audit_interval_s
        self._strangers: OrderedDict[int, _Stranger] = OrderedDict()
        self.menus_sent: set[int] = set()
        self.names: dict[int, str] = {}  # known users' Telegram first names, to say who acted

    def role_of(self, user_id: int) -> str | None:
        if user_id in self.config_users:
            return self.config_users[user_id]
        grant = self.roles.all().get(user_id)
        return grant.role if grant else None

    def known_users(self) -> dict[int, str]:
        users = {uid: g.role for uid, g in self.roles.all().items()}
        users.update(self.config_users)
        return users

    def stranger_seen(self, user_id: int) -> tuple[bool, bool, int]:
        """(refuse now, audit now, attempts so far). Bounded memory: the oldest strangers are forgotten."""
        entry = self._strangers.pop(user_id, None) or _Stranger()
        self._strangers[user_id] = entry
        while len(self._strangers) > MAX_TRACKED_STRANGERS:
            self._strangers.popitem(last=False)
        entry.attempts += 1
        refuse = not entry.refused
        entry.refused = True
        now = self._clock()
        audit = now - entry.last_audit >= self._audit_interval
        if audit:
            entry.last_audit = now
        return refuse, audit, entry.attempts


def command_of(text: str | None, bot_username: str | None) -> tuple[str | None, list[str]]:
    """("status", [args]) for "/status@thisbot a b"; (None, []) for plain text or another bot's command."""
    if not text or not text.startswith("/"):
        return None, []
    head, *args = text.split()
    name, _, addressee = head[1:].partition("@")
    if addressee and (bot_username is None or addressee.lower() != bot_username.lower()):
        return None, []
    return name.lower(), args


async def gate(update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
    """Group -1 handler: lets an update through to the handlers only when its sender may do what it asks."""
    deps = deps_of(context)
    if not isinstance(update, Update):
        raise ApplicationHandlerStop
    # Only fresh messages and button presses act. Edits would re-run a command (PTB's CommandHandler reacts to
    # edited messages), and membership or channel updates carry nothing to obey.
    message, query = update.message, update.callback_query
    user, chat = update.effective_user, update.effective_chat
    if (message is None and query is None) or user is None or chat is None or user.is_bot:
        raise ApplicationHandlerStop
    access = deps.access
    if deps.notifier is not None and chat.type == ChatType.PRIVATE:
        deps.notifier.unreachable.discard(chat.id)  # they wrote: the chat exists and is not blocked
    role = access.role_of(user.id)
    text = message.text if message is not None else None
    command, _ = command_of(text, context.bot.username)
    if role is None:
        await _refuse_stranger(update, context, user.id, user.language_code, command, query is not None)
        raise ApplicationHandlerStop
    if user.first_name:
        access.names[user.id] = user.first_name[:64]
    settings = await asyncio.to_thread(deps.user_settings.get, user.id, language_from_client(user.language_code))
    t = deps.catalogs.translator(settings.language)
    caller = Caller(user.id, chat.id, chat.type, role, settings)
    context.caller = caller  # type: ignore[attr-defined]
    if user.id not in access.menus_sent and chat.type == ChatType.PRIVATE:
        # Telegram only takes a per-chat menu once the chat exists, i.e. after the user's first message.
        access.menus_sent.add(user.id)
        context.application.create_task(menu.set_for_user(context.bot, deps, user.id, role, settings.language))
    if chat.type != ChatType.PRIVATE and not access.allow_groups:
        if query is None and command is None:
            raise ApplicationHandlerStop  # group chatter is not an attempt: no answer, no audit row
        await deps.audit_async(caller.actor, "telegram_access", {"chat_id": chat.id, "chat_type": chat.type},
                               "denied", "group chats are not allowed")
        if query is not None:
            await query.answer(deps.redactor(t("gate.private_only")), show_alert=True)
        elif message is not None:
            await message.reply_text(deps.redactor(t("gate.private_only")))
        raise ApplicationHandlerStop
    if query is not None:
        return  # confirm.py checks the pending action's own minimum role when the button is pressed
    if command is None:
        if chat.type == ChatType.PRIVATE:
            await message.reply_text(deps.redactor(t("gate.not_a_command")))
        raise ApplicationHandlerStop
    declared = deps.registry.get(command)
    if declared is None:
        await message.reply_text(deps.redactor(t("gate.unknown_command", command=command[:40])))
        raise ApplicationHandlerStop
    if not at_least(role, declared.min_role):
        # Redact before cutting: a cut through a key would leave a part of it no redactor can recognise.
        await deps.audit_async(caller.actor, declared.name, {"text": deps.redactor(text or "")[:200]}, "denied",
                               f"needs {declared.min_role}")
        await message.reply_text(deps.redactor(t("gate.role_too_low", command=declared.name,
                                                   role=t(f"role.{role}"), needed=t(f"role.{declared.min_role}"))))
        raise ApplicationHandlerStop


async def _refuse_stranger(update: Update, context: CallbackContext[Any, Any, Any, Any], user_id: int,
                           client_language: str | None, command: str | None, is_press: bool) -> None:
    deps = deps_of(context)
    refuse, audit, attempts = deps.access.stranger_seen(user_id)
    if audit:
        chat = update.effective_chat
        await deps.audit_async(Actor("telegram", user_id, None), "telegram_access",
                               {"chat_id": chat.id if chat else None, "command": command, "attempts": attempts},
                               "denied", "unknown user")
        log.warning("refused unknown Telegram user %s (%d attempts)", user_id, attempts)
    t = deps.catalogs.translator(language_from_client(client_language))
    if is_press and update.callback_query is not None:
        # A press must be answered or the client spins; the answer costs Telegram nothing visible to others.
        if refuse:
            await update.callback_query.answer(deps.redactor(t("gate.stranger", user_id=user_id)), show_alert=True)
        return
    if refuse and update.message is not None and update.effective_chat is not None \
            and update.effective_chat.type == ChatType.PRIVATE:
        await update.message.reply_text(deps.redactor(t("gate.stranger", user_id=user_id)))
