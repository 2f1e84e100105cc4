"""Wiring: ``build_application`` turns settings, the trading service and storage into a PTB Application.

The caller runs it (``run_polling``, or initialize/start/updater.start_polling inside its own loop); starting it
publishes the command menus, schedules the daily reports and starts the notifier; stopping it stops them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ContextTypes, ExtBot, TypeHandler
from telegram.request import HTTPXRequest

from bot.i18n import Catalogs
from bot.i18n import catalogs as shipped_catalogs
from bot.telegram import confirm, menu
from bot.telegram.buttons import ButtonStore
from bot.telegram.context import DEPS_KEY, BotDeps
from bot.telegram.handlers import default_registry
from bot.telegram.handlers import risk as risk_handlers
from bot.telegram.notifier import Notifier, details_handler
from bot.telegram.permissions import AccessControl, gate
from bot.telegram.report import ReportScheduler
from bot.telegram.store import RoleStore, SettingsStore
from trader.bootstrap import Core
from trader.config.schema import Settings
from trader.events import EventBus
from trader.security.redaction import Redactor

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"


class RedactingBot(ExtBot[Any]):
    """Every text that leaves through this bot is redacted, whichever code path sends it."""

    __slots__ = ("_redactor",)

    def __init__(self, *args: Any, redactor: Redactor, **kwargs: Any):
        super().__init__(*args, **kwargs)
        with self._unfrozen():
            self._redactor = redactor

    def _clean(self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, index: int) -> tuple[Any, ...]:
        if name in kwargs and isinstance(kwargs[name], str):
            kwargs[name] = self._redactor(kwargs[name])
        elif len(args) > index and isinstance(args[index], str):
            args = (*args[:index], self._redactor(args[index]), *args[index + 1:])
        return args

    async def send_message(self, *args: Any, **kwargs: Any) -> Any:
        return await super().send_message(*self._clean(args, kwargs, "text", 1), **kwargs)

    async def edit_message_text(self, *args: Any, **kwargs: Any) -> Any:
        return await super().edit_message_text(*self._clean(args, kwargs, "text", 0), **kwargs)

    async def answer_callback_query(self, *args: Any, **kwargs: Any) -> Any:
        return await super().answer_callback_query(*self._clean(args, kwargs, "text", 1), **kwargs)

    async def send_photo(self, *args: Any, **kwargs: Any) -> Any:
        return await super().send_photo(*self._clean(args, kwargs, "caption", 2), **kwargs)

    async def send_document(self, *args: Any, **kwargs: Any) -> Any:
        return await super().send_document(*self._clean(args, kwargs, "caption", 2), **kwargs)

    async def edit_message_caption(self, *args: Any, **kwargs: Any) -> Any:
        return await super().edit_message_caption(*self._clean(args, kwargs, "caption", 3), **kwargs)


class BotApplication(Application):  # type: ignore[type-arg]
    """Starts and stops the bot's own machinery with the Application, however the caller runs it."""

    async def initialize(self) -> None:
        await super().initialize()
        deps: BotDeps = self.bot_data[DEPS_KEY]
        try:
            await menu.publish(self.bot, deps)
        except TelegramError as exc:  # a menu is a convenience; the commands work without it
            log.warning("could not publish the command menu: %s", exc)

    async def start(self) -> None:
        await super().start()
        deps: BotDeps = self.bot_data[DEPS_KEY]
        if deps.reports is not None:
            await deps.reports.schedule_all()
        if deps.notifier is not None:
            await deps.notifier.start()
            bus = deps.extras.get("bus")
            if bus is not None:
                deps.notifier.attach(bus, asyncio.get_running_loop())

    async def stop(self) -> None:
        deps: BotDeps = self.bot_data[DEPS_KEY]
        if deps.notifier is not None:
            await deps.notifier.stop()
        await super().stop()


def api_urls(api_base_url: Any) -> tuple[str, str]:
    """`telegram.api_base_url` (a Bot API server root) → PTB's base_url and base_file_url."""
    root = str(api_base_url or TELEGRAM_API).rstrip("/").removesuffix("/bot")
    return f"{root}/bot", f"{root}/file/bot"


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    # Telegram failing to take an answer is logged, never raised into PTB's loop; the engine is unaffected.
    log.warning("telegram update failed: %s", context.error, exc_info=context.error)


def build_application(
    settings: Settings,
    service: Any,
    core: Core,
    bus: EventBus | None = None,
    *,
    token: str | None = None,
    catalogs: Catalogs | None = None,
    confirm_ttl_s: float = confirm.TTL_S,
    clock: Callable[[], float] = time.monotonic,
    rate_limit: bool = True,
    notifier_options: dict[str, Any] | None = None,
    research: Any = None,
) -> Application:  # type: ignore[type-arg]
    """The bot, ready to run.

    service: a TradingService on this loop, or a ServiceProxy to one on the engine's loop.
    research: a ResearchService (backtests, hyperopt) or a ResearchProxy to one; None leaves those commands out of
    service (they answer that this process does not run them).
    core: storage from ``trader.bootstrap.open_core`` (audit log, sessions for settings and grants, redactor).
    bus: engine events to notify about; None runs the bot without notifications.
    token: defaults to ``settings.telegram.token``.
    """
    tg = settings.telegram
    secret = token or (tg.token.get_secret_value() if tg.token else None)
    if not secret:
        raise ValueError("telegram.token is not set")
    core.redactor.add(secret)
    base_url, base_file_url = api_urls(tg.api_base_url)
    bot = RedactingBot(
        secret, base_url=base_url, base_file_url=base_file_url, redactor=core.redactor,
        request=HTTPXRequest(connection_pool_size=16, connect_timeout=10.0, read_timeout=15.0, write_timeout=15.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=30.0),
        rate_limiter=AIORateLimiter(max_retries=2) if rate_limit else None,
    )
    app = (Application.builder().application_class(BotApplication).bot(bot)
           .concurrent_updates(True).build())
    roles = RoleStore(core.sessions)
    registry = default_registry()
    deps = BotDeps(
        settings=settings, service=service, research=research, audit=core.audit, redactor=core.redactor,
        catalogs=catalogs or shipped_catalogs(),
        user_settings=SettingsStore(core.sessions, language=tg.language, report_time=tg.report_time,
                                    timezone=tg.timezone),
        roles=roles, registry=registry,
        access=AccessControl(dict(tg.users), roles, allow_groups=tg.allow_groups, clock=clock),
        buttons=ButtonStore(clock, confirm_ttl_s=confirm_ttl_s),
    )
    deps.extras["bus"] = bus
    deps.notifier = Notifier(deps, app.bot, **(notifier_options or {}))
    if app.job_queue is not None:
        deps.reports = ReportScheduler(app.job_queue, deps)
        risk_handlers.schedule_weekly(app.job_queue)  # the weekly risk re-tuning offer to admins
    app.bot_data[DEPS_KEY] = deps
    app.add_handler(TypeHandler(Update, gate), group=-1)
    for handler in registry.handlers():
        app.add_handler(handler)
    app.add_handler(details_handler())  # before the catch-all that refuses every other button
    app.add_handler(confirm.handler())
    app.add_error_handler(_on_error)
    return app
