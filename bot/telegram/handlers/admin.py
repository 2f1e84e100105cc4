"""Admin commands: who may use the bot (/users) and what was done (/audit)."""

from __future__ import annotations

import asyncio

from bot.i18n import Translator
from bot.telegram import confirm, menu
from bot.telegram import formatting as fmt
from bot.telegram.context import Caller, Request
from bot.telegram.handlers import args
from bot.telegram.permissions import ROLES
from bot.telegram.registry import Command

MAX_AUDIT = 50


async def users(request: Request) -> confirm.Ask | None:
    deps, t = request.deps, request.t
    if not request.args:
        grants = deps.roles.all()
        lines = [t("users.title")]
        for user_id, role in sorted(deps.access.known_users().items()):
            source = t("users.from_config") if user_id in deps.access.config_users else \
                t("users.granted_by", by=grants[user_id].granted_by or "-")
            lines.append(t("users.line", user_id=user_id, role=t(f"role.{role}"), source=source))
        lines.append("")
        lines.append(t("usage.users"))
        await request.reply("\n".join(lines))
        return None
    verb = request.args[0].lower()
    if verb not in ("grant", "revoke") or len(request.args) != (3 if verb == "grant" else 2):
        await args.usage(request)
        return None
    target_text = request.args[1]
    if not target_text.isdigit() or not 0 < int(target_text) < 2**63 or len(target_text) > 19:
        await request.reply(t("users.bad_id", text=target_text[:30]))
        return None
    target = int(target_text)
    role = request.args[2].lower() if verb == "grant" else None
    if role is not None and role not in ROLES:
        await request.reply(t("users.bad_role", text=request.args[2][:20], choices=", ".join(ROLES)))
        return None
    if target == request.caller.user_id:
        await request.reply(t("users.not_self"))
        return None
    if target in deps.access.config_users:
        await request.reply(t("users.in_config", user_id=target))
        return None
    if verb == "revoke" and target not in deps.roles.all():
        await request.reply(t("users.no_grant", user_id=target))
        return None

    async def run(caller: Caller, tr: Translator) -> str:
        if target in deps.access.config_users:  # the file may have been reloaded meanwhile
            return tr("users.in_config", user_id=target)
        if verb == "grant":
            assert role is not None
            await asyncio.to_thread(deps.roles.grant, target, role, caller.user_id)
            await deps.audit_async(caller.actor, "role_grant", {"user_id": target, "role": role}, "ok")
            await menu.set_for_user(request.context.bot, deps, target, role, None)
            if deps.reports is not None:
                deps.reports.schedule(await asyncio.to_thread(deps.user_settings.get, target))
            return tr("users.granted", user_id=target, role=tr(f"role.{role}"))
        removed = await asyncio.to_thread(deps.roles.revoke, target)
        await deps.audit_async(caller.actor, "role_revoke", {"user_id": target}, "ok" if removed else "refused")
        await menu.clear_for_user(request.context.bot, target)
        if deps.reports is not None:
            deps.reports.unschedule(target)
        return tr("users.revoked", user_id=target) if removed else tr("users.no_grant", user_id=target)

    if verb == "grant":
        question = t("users.confirm_grant", user_id=target, role=t(f"role.{role}"))
        arguments = {"user_id": target, "role": role}
    else:
        question = t("users.confirm_revoke", user_id=target)
        arguments = {"user_id": target}
    return confirm.Ask(question, f"role_{verb}", arguments, run,
                      state=lambda: deps.access.role_of(target))


async def audit(request: Request) -> None:
    if len(request.args) > 1:
        await args.usage(request)
        return
    limit = 15
    if request.args:
        parsed = await args.whole_number(request, request.args[0], 1, MAX_AUDIT)
        if parsed is None:
            return
        limit = parsed
    records = await asyncio.to_thread(request.deps.audit.recent, limit)
    await request.reply(fmt.audit_records(request.t, records, request.caller.settings.timezone))


COMMANDS = [
    Command("users", users, "admin", "confirm", "help.users", group="admin"),
    Command("audit", audit, "admin", "read", "help.audit", group="admin"),
]
