"""/risk (viewer): each risk rule's live state in the running engine. /risktune (admin): re-tune the risk parameters
over recent trades (optuna TPE, trader.risk.tuning) and offer the result with an Apply button; Apply only asks,
the change is the confirmed, audited ``apply_strategy_params`` of /hyperopt's Apply. Once a week
(``schedule_weekly``) every admin is offered the re-tuning of the last 30 days the same way when it found something
that held on trades it did not see; nothing changes unless an admin applies and confirms it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import TelegramError

from bot.telegram.buttons import Kind
from bot.telegram.context import DEPS_KEY, BotDeps, Request, send_text, service_error_text
from bot.telegram.handlers import args
from bot.telegram.handlers.hyperopt import APPLY_TTL_S, ApplyParams, ask_apply
from bot.telegram.registry import Command
from bot.telegram.risk_text import risk_text, tuning_text
from trader.service.errors import ServiceError

PREFIX = "rt"
KIND = Kind(PREFIX, "a", "risktune_button", "hyperopt.expired")
DEFAULT_DAYS = 30
WEEK_S = 7 * 86_400.0
WEEKLY_JOB = "risk-tuning-weekly"
log = logging.getLogger(__name__)


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


async def offer_tuning(bot: Any, deps: BotDeps) -> int:
    """The weekly offer: propose over the last DEFAULT_DAYS; when something held out of sample, send each admin the
    proposal with an Apply button bound to them. Returns how many admins were told."""
    try:
        proposal = await deps.service.propose_risk_params(DEFAULT_DAYS)
    except ServiceError as exc:  # too few trades, most often: nothing to offer this week
        log.info("weekly risk re-tuning: %s", exc)
        return 0
    if not proposal.proposed:
        return 0
    told = 0
    for user_id, role in deps.access.known_users().items():
        if role != "admin":
            continue
        settings = await asyncio.to_thread(deps.user_settings.get, user_id)
        t = deps.catalogs.translator(settings.language)
        entry = deps.buttons.add(KIND, None, ttl_s=APPLY_TTL_S, reusable=True, keep_text=True, user_id=user_id,
                                 chat_id=user_id, payload=ApplyParams(dict(proposal.proposed)))
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(t("hyperopt.button.apply"),
                                                               callback_data=KIND.data(entry.nonce, "a"))]])
        try:
            sent = await send_text(bot, user_id, deps.redactor(t("risktune.weekly") + "\n" +
                                                               tuning_text(t, proposal, DEFAULT_DAYS)), keyboard)
        except TelegramError as exc:
            log.warning("weekly risk re-tuning not delivered to %s: %s", user_id, exc)
            continue
        entry.message_id = sent.message_id
        told += 1
    return told


async def _weekly(context: Any) -> None:
    await offer_tuning(context.bot, context.application.bot_data[DEPS_KEY])


def schedule_weekly(job_queue: Any) -> None:
    """Offer the risk re-tuning to the admins every seven days (the first a week after the bot starts)."""
    for job in job_queue.get_jobs_by_name(WEEKLY_JOB):
        job.schedule_removal()
    job_queue.run_repeating(_weekly, interval=WEEK_S, first=WEEK_S, name=WEEKLY_JOB)


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
