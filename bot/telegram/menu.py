"""The BotCommand menu: everyone sees the viewer commands in their client's language; each known user gets, in
their own chat, the commands of their role in the language they chose."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from telegram.error import TelegramError

from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, MENU_CODES
from bot.telegram.context import BotDeps

log = logging.getLogger(__name__)


def commands_for(deps: BotDeps, role: str, language: str) -> list[BotCommand]:
    t = deps.catalogs.translator(language)
    return [BotCommand(c.name, t(c.help_key)[:256]) for c in deps.registry.for_role(role)]


async def publish(bot: Any, deps: BotDeps) -> None:
    """Default menus for every language, then a per-chat menu for each known user."""
    for language in LANGUAGES:
        code = None if language == DEFAULT_LANGUAGE else MENU_CODES[language]
        commands = commands_for(deps, "viewer", language)
        await bot.set_my_commands(commands, language_code=code)
        await bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats(), language_code=code)
    for user_id, role in deps.access.known_users().items():
        await set_for_user(bot, deps, user_id, role, None)


async def set_for_user(bot: Any, deps: BotDeps, user_id: int, role: str, language: str | None) -> None:
    if language is None:
        language = (await asyncio.to_thread(deps.user_settings.get, user_id)).language
    try:
        await bot.set_my_commands(commands_for(deps, role, language), scope=BotCommandScopeChat(user_id))
        deps.access.menus_sent.add(user_id)
    except TelegramError as exc:  # the user never opened a chat with the bot: set at their first message
        log.info("no per-user menu for %s yet: %s", user_id, exc)


async def clear_for_user(bot: Any, user_id: int) -> None:
    try:
        await bot.delete_my_commands(scope=BotCommandScopeChat(user_id))
    except TelegramError as exc:
        log.info("could not clear the menu of %s: %s", user_id, exc)
