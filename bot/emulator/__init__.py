"""A local Telegram Bot API for tests and the offline demo: the real python-telegram-bot Application talks to it
over HTTP on 127.0.0.1, while a driver plays users and reads back everything the bot sent."""

from bot.emulator.driver import DEFAULT_GROUP_ID, DEFAULT_SUPERGROUP_ID, DEFAULT_TOKEN, TelegramEmulator
from bot.emulator.errors import ApiError
from bot.emulator.flood import FloodPolicy
from bot.emulator.state import CallbackAnswer, CallbackQuery, Chat, ChatMessage, CommandScope, User

__all__ = [
    "DEFAULT_GROUP_ID", "DEFAULT_SUPERGROUP_ID", "DEFAULT_TOKEN", "ApiError", "CallbackAnswer", "CallbackQuery",
    "Chat", "ChatMessage", "CommandScope", "FloodPolicy", "TelegramEmulator", "User",
]
