"""Every command, declared once: name, handler, minimum role, risk and help key.

The declaration drives everything else: the CommandHandlers, the gate's role check, /help and the BotCommand
menu in each language. A command that is not declared here does not exist for the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from telegram import Update
from telegram.ext import CallbackContext, CommandHandler, filters

from bot.telegram.context import Request, deps_of
from bot.telegram.permissions import ROLES, at_least, command_of
from trader.exchange.errors import ExchangeError
from trader.service.errors import ServiceError

log = logging.getLogger(__name__)

Risk = Literal["read", "write", "confirm"]  # confirm: answers with Confirm / Cancel before anything happens
Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    min_role: str
    risk: Risk
    help_key: str  # catalog key of the one-line description; "<help_key>.usage" may add a usage line

    def __post_init__(self) -> None:
        if self.min_role not in ROLES:
            raise ValueError(f"/{self.name}: unknown role {self.min_role!r}")


class Registry:
    def __init__(self, commands: Iterable[Command] = ()):
        self._commands: dict[str, Command] = {}
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        if command.name in self._commands:
            raise ValueError(f"/{command.name} is declared twice")
        self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def for_role(self, role: str) -> list[Command]:
        return [c for c in self._commands.values() if at_least(role, c.min_role)]

    def handlers(self) -> list[CommandHandler[Any, Any]]:
        # UpdateType.MESSAGE: an edited "/flatten" must not ask again; only fresh messages are commands.
        return [CommandHandler(c.name, _runner(c), filters=filters.UpdateType.MESSAGE) for c in self._commands.values()]


def _runner(command: Command) -> Callable[[Update, CallbackContext[Any, Any, Any, Any]], Awaitable[None]]:
    async def run(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> None:
        deps = deps_of(context)
        caller = getattr(context, "caller", None)
        if caller is None or not at_least(caller.role, command.min_role):
            return  # the gate decides and answers; a handler reached without it does nothing
        _, args = command_of(update.message.text if update.message else None, context.bot.username)
        t = deps.catalogs.translator(caller.settings.language)
        request = Request(update, context, deps, caller, command.name, args, t)
        try:
            await command.handler(request)
        except ServiceError as exc:
            await request.reply(service_error_text(t, exc))
        except ExchangeError as exc:
            log.warning("/%s: exchange error %s", command.name, exc)
            await request.reply(t("error.exchange", detail=str(exc)))
        except Exception:
            log.exception("/%s failed", command.name)
            await request.reply(t("error.internal"))

    return run


def service_error_text(t: Callable[..., str], exc: ServiceError) -> str:
    return t(f"error.{exc.code}", detail=exc.message)
