"""/risk (viewer): each risk rule's live state in the running engine."""

from __future__ import annotations

from bot.telegram.context import Request
from bot.telegram.handlers import args
from bot.telegram.registry import Command
from bot.telegram.risk_text import risk_text


async def risk(request: Request) -> None:
    if request.args:
        await args.usage(request)
        return
    view = await request.service.risk()
    await request.reply(risk_text(request.t, view, request.caller.settings.timezone))


COMMANDS = [
    Command("risk", risk, "viewer", "read", "help.risk", group="account"),
]
