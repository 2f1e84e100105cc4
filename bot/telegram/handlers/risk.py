"""/risk (viewer): each risk rule's live state in the running engine. /risktune (admin): re-tune the risk parameters
over recent trades (optuna TPE, trader.risk.tuning) and offer the result with an Apply button; Apply only asks,
the change is the confirmed, audited ``apply_strategy_params`` of /hyperopt's Apply."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.buttons import Kind
from bot.telegram.context import Request, service_error_text
from bot.telegram.handlers import args
from bot.telegram.handlers.hyperopt import APPLY_TTL_S, ApplyParams, ask_apply
from bot.telegram.registry import Command
from bot.telegram.risk_text import risk_text, tuning_text
from trader.service.errors import ServiceError

PREFIX = "rt"
KIND = Kind(PREFIX, "a", "risktune_button", "hyperopt.expired")
DEFAULT_DAYS = 30


async def risk(request: Request) -> None:
    if request.args:
        await args.usage(request)
        return
    view = await request.service.risk()
    await request.reply(risk_text(request.t, view, request.caller.settings.timezone))


async def risktune(request: Request) -> None:
    if len(request.args) > 1:
        await args.usage(request)
        return
    days = DEFAULT_DAYS
    if request.args:
        parsed = await args.whole_number(request, request.args[0], 7, 365)
        if parsed is None:
            return
        days = parsed
    try:
        proposal = await request.service.propose_risk_params(days)
    except ServiceError as exc:
        await request.reply(service_error_text(request.t, exc))
        return
    text = tuning_text(request.t, proposal, days)
    if not proposal.proposed:
        await request.reply(text)
        return
    entry = request.deps.buttons.add(KIND, request.caller, ttl_s=APPLY_TTL_S, reusable=True, keep_text=True,
                                     payload=ApplyParams(dict(proposal.proposed)))
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(request.t("hyperopt.button.apply"),
                                                           callback_data=KIND.data(entry.nonce, "a"))]])
    sent = await request.reply(text, keyboard)
    entry.message_id = sent.message_id


async def on_press(request: Request) -> None:
    deps, caller, t = request.deps, request.caller, request.t
    query = request.update.callback_query
    claimed = await deps.buttons.claim(deps, caller, query, t, KIND, lambda _e, choice: choice == "a")
    if claimed is None:
        return
    entry, _ = claimed
    await query.answer()
    await ask_apply(request, dict(entry.payload.params))


COMMANDS = [
    Command("risk", risk, "viewer", "read", "help.risk", group="account"),
    Command("risktune", risktune, "admin", "read", "help.risktune", group="research", buttons=PREFIX,
            on_press=on_press),
]
