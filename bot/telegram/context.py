"""What every handler gets: the caller (who, where, which role and language) and the bot's dependencies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.ext import CallbackContext

from bot.i18n import Catalogs, Translator
from bot.telegram.formatting import split_text
from bot.telegram.store import RoleStore, SettingsStore, UserSettings
from trader.config.schema import Settings
from trader.persistence.audit import Actor, AuditLog
from trader.security.redaction import Redactor

if TYPE_CHECKING:
    from bot.telegram.buttons import ButtonStore
    from bot.telegram.notifier import Notifier
    from bot.telegram.permissions import AccessControl
    from bot.telegram.registry import Registry
    from bot.telegram.report import ReportScheduler

log = logging.getLogger(__name__)

DEPS_KEY = "bsmart"


@dataclass
class BotDeps:
    """The bot's collaborators, kept in ``application.bot_data[DEPS_KEY]``.

    ``service`` is a TradingService or a ServiceProxy to one on another loop; handlers call nothing else that
    trades or reads the account. ``research`` is the ResearchService (or its proxy) for backtests and hyperopt;
    None in a process that runs none."""

    settings: Settings
    service: Any
    audit: AuditLog
    redactor: Redactor
    catalogs: Catalogs
    user_settings: SettingsStore
    roles: RoleStore
    registry: Registry
    access: AccessControl
    buttons: ButtonStore  # every inline button's meaning: confirmations, pickers, job controls, details
    notifier: Notifier | None = None
    reports: ReportScheduler | None = None
    research: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def audit_async(self, actor: Actor, action: str, arguments: dict[str, Any], outcome: str,
                          detail: str = "") -> None:
        try:
            await asyncio.to_thread(self.audit.record, actor, action, arguments, outcome, detail)
        except Exception:  # an audit write failing must not turn a refusal into a crash
            log.exception("audit write failed for %s", action)

    @property
    def confirmations(self) -> _Confirmations:
        """The confirmation questions among the buttons (how many are pending, their TTL)."""
        return _Confirmations(self.buttons)


@dataclass(frozen=True)
class _Confirmations:
    buttons: ButtonStore

    @property
    def ttl_s(self) -> float:
        return self.buttons.confirm_ttl_s

    def __len__(self) -> int:
        self.buttons.sweep()
        return self.buttons.count("cf")


def service_error_text(t: Any, exc: Any) -> str:
    """A ServiceError in the user's words: its reason from the catalog (``reason.<name>``) with its parameters, in
    the frame of its code; a risk rule's refusal from the rule's name and numbers. The English message is for logs
    and the audit trail, never shown (a reason-less error from elsewhere falls back to it)."""
    rule = getattr(exc, "details", {}).get("rule")
    if exc.code == "refused" and rule:
        from bot.telegram.risk_text import rule_detail, rule_word

        return t("error.refused_rule", rule=rule_word(t, rule), detail=rule_detail(t, rule, exc.details["values"]))
    reason = getattr(exc, "reason", None)
    detail = reason_text(t, reason, getattr(exc, "params", {})) if reason else exc.message
    return t(f"error.{exc.code}", detail=detail)


def reason_text(t: Any, reason: str, params: dict[str, Any]) -> str:
    """One refusal reason in the user's language; the parameter conventions are trader/service/errors.py's."""
    from bot.telegram.formatting import amount, short_pair

    if reason == "several":
        return t("reason.joiner").join(reason_text(t, r, p) for r, p in params["items"])
    fields: dict[str, Any] = {}
    for name, value in params.items():
        if name in ("pair", "target"):  # a target is a pair or a trade id (short_pair leaves an id as it is)
            fields[name] = short_pair(str(value))
        elif name == "pairs":
            fields[name] = ", ".join(short_pair(str(p)) for p in value)
        elif name == "side" and value in ("long", "short"):
            fields[name] = t(f"side.{value}")
        elif isinstance(value, (list, tuple)):
            fields[name] = ", ".join(str(v) for v in value)
        elif isinstance(value, Decimal):
            fields[name] = amount(value)
        else:
            fields[name] = value
    return t(f"reason.{reason}", **fields)


def deps_of(context: CallbackContext[Any, Any, Any, Any]) -> BotDeps:
    return context.application.bot_data[DEPS_KEY]


@dataclass(frozen=True)
class Caller:
    user_id: int
    chat_id: int
    chat_type: str
    role: str
    settings: UserSettings

    @property
    def actor(self) -> Actor:
        return Actor("telegram", self.user_id, self.role)


@dataclass
class Request:
    """One command invocation, as a handler sees it."""

    update: Update
    context: CallbackContext[Any, Any, Any, Any]
    deps: BotDeps
    caller: Caller
    command: str
    args: list[str]
    t: Translator
    service_guard: Any = None  # a confirm command's view of the service while it asks (confirm.AskOnly)

    @property
    def service(self) -> Any:
        return self.service_guard if self.service_guard is not None else self.deps.service

    @property
    def research(self) -> Any:
        if self.deps.research is None:
            raise RuntimeError("backtests and hyperopt are not served by this process")
        return self.deps.research

    async def reply(self, text: str, keyboard: InlineKeyboardMarkup | None = None) -> Message:
        """Send redacted text in Telegram-sized pieces; the keyboard goes on the last piece."""
        return await send_text(self.context.bot, self.caller.chat_id, self.deps.redactor(text), keyboard)


async def send_text(bot: Any, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None = None,
                    *, silent: bool = False) -> Message:
    pieces = split_text(text)
    message = None
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        message = await bot.send_message(chat_id, piece, reply_markup=keyboard if last else None,
                                         disable_notification=silent)
    assert message is not None
    return message
