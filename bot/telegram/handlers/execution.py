"""/execution (viewer): execution quality per pair, liquidity tiers and the maintenance schedule."""

from __future__ import annotations

from bot.telegram.context import Request
from bot.telegram.handlers import args
from bot.telegram.market_text import execution_text
from bot.telegram.registry import Command


async def execution(request: Request) -> None:
    days = 30
    if request.args:
        text = request.args[0]
        if len(request.args) > 1 or not text.isdigit() or not 1 <= int(text) <= 365:
            await args.usage(request)
            return
        days = int(text)
    view = await request.service.execution(days)
    await request.reply(execution_text(request.t, view, request.caller.settings.timezone))


COMMANDS = [
    Command("execution", execution, "viewer", "read", "help.execution", group="account"),
]
