"""/start, /help and /settings: who am I, what can I do, how do I want to be told."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

from bot.i18n import LANGUAGES
from bot.telegram import menu
from bot.telegram.context import Request
from bot.telegram.handlers import args
from bot.telegram.registry import GROUPS, Command
from bot.telegram.store import DEFAULT_LEVELS, LEVELS, UserSettings


async def start(request: Request) -> None:
    user = request.update.effective_user
    name = (user.first_name if user else None) or str(request.caller.user_id)
    t = request.t
    await request.reply(t("start.greeting", name=name[:64], role=t(f"role.{request.caller.role}")))


async def help_(request: Request) -> None:
    t = request.t
    lines = [t("help.title", role=t(f"role.{request.caller.role}"))]
    allowed = request.deps.registry.for_role(request.caller.role)
    for group in GROUPS:  # by purpose: what you read, what you control, research, administration
        members = [c for c in allowed if c.group == group]
        if not members:
            continue
        lines += ["", t(f"help.group.{group}")]
        for command in members:
            marker = " ⚠" if command.risk == "confirm" else ""
            lines.append(f"/{command.name} — {t(command.help_key)}{marker}")
    lines.append("")
    lines.append(t("help.footer"))
    await request.reply("\n".join(lines))


def _describe(request: Request, settings: UserSettings) -> str:
    t = request.t
    lines = [
        t("settings.title"),
        t("settings.language", language=t(f"language.{settings.language}")),
        t("settings.report", time=settings.report_time.strftime("%H:%M"), zone=settings.timezone),
        t("settings.notifications"),
    ]
    for kind in DEFAULT_LEVELS:
        lines.append(t("settings.notify_line", kind=t(f"event.{kind}"), code=kind,
                       level=t(f"level.{settings.level(kind)}")))
    lines.append("")
    lines.append(t("usage.settings"))
    return "\n".join(lines)


async def settings(request: Request) -> None:
    deps, caller = request.deps, request.caller
    current = caller.settings
    if not request.args:
        await request.reply(_describe(request, current))
        return
    what, rest = request.args[0].lower(), request.args[1:]
    changed: UserSettings | None = None
    if what == "language" and len(rest) == 1:
        wanted = {lang.lower(): lang for lang in LANGUAGES}.get(rest[0].lower().replace("-", "_"))
        if wanted is None and rest[0].lower() in ("zh", "cn", "中文"):
            wanted = "zh_CN"
        if wanted is None:
            await request.reply(request.t("settings.bad_language", text=rest[0][:20], choices=", ".join(LANGUAGES)))
            return
        changed = current.with_changes(language=wanted)
    elif what in ("report", "timezone") and rest and len(rest) <= 2:
        when, zone = current.report_time, current.timezone
        zone_text = rest[0] if what == "timezone" else (rest[1] if len(rest) == 2 else None)
        if what == "report":
            try:
                when = dt.datetime.strptime(rest[0], "%H:%M").time()
            except ValueError:
                await request.reply(request.t("settings.bad_time", text=rest[0][:20]))
                return
        elif len(rest) != 1:
            await args.usage(request)
            return
        if zone_text is not None:
            try:
                zoneinfo.ZoneInfo(zone_text)
                zone = zone_text
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                await request.reply(request.t("settings.bad_zone", text=zone_text[:40]))
                return
        changed = current.with_changes(report_time=when, timezone=zone)
    elif what == "notify" and len(rest) == 2:
        kind, level = rest[0].lower(), rest[1].lower()
        if level not in LEVELS:
            await request.reply(request.t("settings.bad_level", text=rest[1][:20], choices=", ".join(LEVELS)))
            return
        if kind != "all" and kind not in DEFAULT_LEVELS:
            await request.reply(request.t("settings.bad_kind", text=rest[0][:40],
                                          choices=", ".join(["all", *DEFAULT_LEVELS])))
            return
        kinds = list(DEFAULT_LEVELS) if kind == "all" else [kind]
        changed = current.with_changes(notifications={**current.notifications, **{k: level for k in kinds}})
    else:
        await args.usage(request)
        return
    await asyncio.to_thread(deps.user_settings.save, changed)
    if deps.reports is not None:
        deps.reports.schedule(changed)
    if changed.language != current.language:
        await menu.set_for_user(request.context.bot, deps, caller.user_id, caller.role, changed.language)
    t = deps.catalogs.translator(changed.language)
    request.t = t
    await request.reply(t("settings.saved") + "\n\n" + _describe(request, changed))


COMMANDS = [
    Command("start", start, "viewer", "read", "help.start"),
    Command("help", help_, "viewer", "read", "help.help"),
    Command("settings", settings, "viewer", "write", "help.settings"),
]
