"""Every command, declared once: name, handler, minimum role, risk, help key and /help group.

The declaration drives everything else: the CommandHandlers, the gate's role check, /help and the BotCommand
menu in each language. A command that is not declared here does not exist for the bot.

``risk="confirm"`` is structural: such a handler returns a ``confirm.Ask`` (or answers plainly, e.g. a usage
line), the runner posts the Confirm / Cancel question, and until it is posted the handler's service refuses every
call made on someone's behalf (confirm.AskOnly). Only the Confirm press runs the action.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from telegram import Update
from telegram.ext import BaseHandler, CallbackContext, CallbackQueryHandler, CommandHandler, filters

from bot.telegram import confirm
from bot.telegram.context import Request, deps_of, service_error_text
from bot.telegram.permissions import ROLES, at_least, command_of
from trader.exchange.errors import ExchangeError
from trader.service.errors import ServiceError

log = logging.getLogger(__name__)
_PREFIX = re.compile(r"^[a-z]{2,8}$")

Risk = Literal["read", "write", "confirm"]  # confirm: answers with Confirm / Cancel before anything happens
Handler = Callable[[Request], Awaitable[Any]]  # a confirm command's returns confirm.Ask | None
GROUPS = ("general", "account", "control", "research", "admin")  # /help's sections, in this order


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    min_role: str
    risk: Risk
    help_key: str  # catalog key of the one-line description; "<help_key>.usage" may add a usage line
    group: str = "general"  # /help's section (GROUPS)
    # Inline buttons the command posts: presses whose callback_data starts with "<buttons>:" go to `on_press`,
    # gated by the same minimum role. The handler validates its own opaque data (see confirm.py's pattern).
    buttons: str | None = None
    on_press: Handler | None = None

    def __post_init__(self) -> None:
        if self.min_role not in ROLES:
            raise ValueError(f"/{self.name}: unknown role {self.min_role!r}")
        if self.group not in GROUPS:
            raise ValueError(f"/{self.name}: unknown help group {self.group!r}")
        if (self.buttons is None) != (self.on_press is None) or (self.buttons and not _PREFIX.match(self.buttons)):
            raise ValueError(f"/{self.name}: buttons needs a short prefix and on_press together")


class Registry:
    def __init__(self, commands: Iterable[Command] = ()):
        self._commands: dict[str, Command] = {}
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        if command.name in self._commands:
            raise ValueError(f"/{command.name} is declared twice")
        if command.buttons and any(c.buttons == command.buttons for c in self._commands.values()):
            raise ValueError(f"/{command.name}: button prefix {command.buttons!r} is taken")
        self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def for_role(self, role: str) -> list[Command]:
        return [c for c in self._commands.values() if at_least(role, c.min_role)]

    def handlers(self) -> list[BaseHandler[Any, Any, Any]]:
        # UpdateType.MESSAGE: an edited "/flatten" must not ask again; only fresh messages are commands.
        found: list[BaseHandler[Any, Any, Any]] = [
            CommandHandler(c.name, _runner(c), filters=filters.UpdateType.MESSAGE) for c in self._commands.values()]
        # Added before confirm.py's catch-all button handler (build_application adds these first), so a declared
        # prefix reaches its command and everything else still meets the confirmation checks.
        found += [CallbackQueryHandler(_press_runner(c), pattern=rf"^{c.buttons}:")
                  for c in self._commands.values() if c.buttons]
        return found


def _runner(command: Command) -> Callable[[Update, CallbackContext[Any, Any, Any, Any]], Awaitable[None]]:
    async def run(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
        deps = deps_of(context)
        caller = getattr(context, "caller", None)
        if caller is None or not at_least(caller.role, command.min_role):
            return  # the gate decides and answers; a handler reached without it does nothing
        _, args = command_of(update.message.text if update.message else None, context.bot.username)
        t = deps.catalogs.translator(caller.settings.language)
        request = Request(update, context, deps, caller, command.name, args, t)
        guard = None
        if command.risk == "confirm":
            guard = request.service_guard = confirm.AskOnly(deps.service)
        try:
            answer = await command.handler(request)
            if isinstance(answer, confirm.Ask):
                if guard is None:  # only a declared confirm command may ask (its help says ⚠)
                    raise TypeError(f"/{command.name} asked for a confirmation but is declared {command.risk!r}")
                guard.lift()
                await confirm.post(request, answer)
            elif answer is not None:
                raise TypeError(f"/{command.name} returned {type(answer).__name__}")
        except confirm.UnconfirmedAction as exc:
            log.error("/%s: %s", command.name, exc)
            await deps.audit_async(caller.actor, command.name, {"args": args[:5]}, "denied", "not confirmed")
            await request.reply(t("error.internal"))
        except ServiceError as exc:
            await request.reply(service_error_text(t, exc))
        except ExchangeError as exc:
            log.warning("/%s: exchange error %s", command.name, exc)
            await request.reply(t("error.exchange", detail=str(exc)))
        except Exception:
            log.exception("/%s failed", command.name)
            await request.reply(t("error.internal"))

    return run


def _press_runner(command: Command) -> Callable[[Update, CallbackContext[Any, Any, Any, Any]], Awaitable[None]]:
    async def run(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
        deps = deps_of(context)
        caller = getattr(context, "caller", None)
        query = update.callback_query
        if caller is None or query is None or command.on_press is None:
            return
        t = deps.catalogs.translator(caller.settings.language)
        if not at_least(caller.role, command.min_role):  # the gate lets presses through; roles change
            await deps.audit_async(caller.actor, command.name, {"data": (query.data or "")[:64]}, "denied",
                                   f"needs {command.min_role}")
            await query.answer(deps.redactor(t("gate.role_too_low", command=command.name,
                                               role=t(f"role.{caller.role}"), needed=t(f"role.{command.min_role}"))),
                               show_alert=True)
            return
        request = Request(update, context, deps, caller, command.name, [], t)
        try:
            await command.on_press(request)
        except ServiceError as exc:
            await request.reply(service_error_text(t, exc))
        except Exception:
            log.exception("/%s button failed", command.name)
            await request.reply(t("error.internal"))

    return run


__all__ = ["GROUPS", "Command", "Registry", "service_error_text"]
