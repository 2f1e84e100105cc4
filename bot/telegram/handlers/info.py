"""Read-only commands: status, positions, balance, PnL, trades, performance, health, the report now."""

from __future__ import annotations

from bot.telegram import formatting as fmt
from bot.telegram import report
from bot.telegram.context import Request
from bot.telegram.handlers import args
from bot.telegram.registry import Command

PNL_COUNTS = {"day": 7, "week": 4, "month": 6}
MAX_TRADES = 50


async def status(request: Request) -> None:
    await request.reply(fmt.status(request.t, await request.service.status()))


async def positions(request: Request) -> None:
    await request.reply(fmt.positions(request.t, await request.service.positions()))


async def balance(request: Request) -> None:
    await request.reply(fmt.balance(request.t, await request.service.balance()))


async def pnl(request: Request) -> None:
    if len(request.args) > 1 or (request.args and request.args[0].lower() not in PNL_COUNTS):
        await args.usage(request)
        return
    period = request.args[0].lower() if request.args else "day"
    rows = await request.service.pnl(period, PNL_COUNTS[period], request.caller.settings.timezone)
    await request.reply(fmt.pnl(request.t, period, rows))


async def trades(request: Request) -> None:
    if len(request.args) > 1:
        await args.usage(request)
        return
    limit = 10
    if request.args:
        parsed = await args.whole_number(request, request.args[0], 1, MAX_TRADES)
        if parsed is None:
            return
        limit = parsed
    views = await request.service.trades(limit)
    await request.reply(fmt.trades(request.t, views, request.caller.settings.timezone))


async def performance(request: Request) -> None:
    await request.reply(fmt.performance(request.t, await request.service.performance()))


async def health(request: Request) -> None:
    await request.reply(fmt.health(request.t, await request.service.health()))


async def report_now(request: Request) -> None:
    await report.deliver(request.context.bot, request.deps, request.caller.chat_id, request.t, request.caller.settings)


COMMANDS = [
    Command("status", status, "viewer", "read", "help.status", group="account"),
    Command("positions", positions, "viewer", "read", "help.positions", group="account"),
    Command("balance", balance, "viewer", "read", "help.balance", group="account"),
    Command("pnl", pnl, "viewer", "read", "help.pnl", group="account"),
    Command("trades", trades, "viewer", "read", "help.trades", group="account"),
    Command("performance", performance, "viewer", "read", "help.performance", group="account"),
    Command("health", health, "viewer", "read", "help.health", group="account"),
    Command("report", report_now, "viewer", "read", "help.report", group="account"),
]
