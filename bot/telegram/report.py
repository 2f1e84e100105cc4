"""The daily health and PnL report: built from the service's views, sent by the JobQueue at each user's local
time, as text followed by a chart (reports.daily) in the user's language and time zone."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from telegram.error import TelegramError
from telegram.ext import ContextTypes, JobQueue

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.context import DEPS_KEY, BotDeps, send_text
from bot.telegram.notifier import health_word, health_words
from bot.telegram.store import UserSettings
from reports.daily import LABELS as CHART_LABELS
from reports.daily import daily_report_chart
from trader.monitoring.supervisor import HealthSummary

log = logging.getLogger(__name__)

TRADES_SCANNED = 500  # a day of closed trades fits many times over


async def build(service: Any, t: Translator, settings: UserSettings, now: dt.datetime | None = None,
                supervisor: Any = None) -> str:
    """Each part is fetched on its own: an exchange outage costs the balance lines, not the whole report.

    ``supervisor``: the main job's supervisor (trader.monitoring.supervisor), for component states and restarts."""
    now = now or await service_now(service)
    zone = settings.zone
    lines = [t("report.title", date=fmt.local_time(now, settings.timezone, "%Y-%m-%d %H:%M"), zone=settings.timezone)]

    async def part(fetch: Any) -> Any:
        try:
            return await fetch
        except Exception as exc:  # the report still goes out, saying what is missing
            log.warning("daily report: %s", exc)
            return exc

    balance, day, week, positions, trades, health, ledger = await asyncio.gather(
        part(service.balance()), part(service.pnl("day", 1, settings.timezone, now=now)),
        part(service.pnl("week", 1, settings.timezone, now=now)), part(service.positions()),
        part(service.trades(TRADES_SCANNED)), part(service.health()), part(service.check_ledger()))
    if isinstance(balance, Exception):
        lines.append(t("report.unavailable", what=t("report.part.balance")))
    else:
        lines.append(t("report.equity", equity=fmt.money(balance.margin_balance), wallet=fmt.money(balance.wallet),
                       unrealized=fmt.signed(balance.unrealized_pnl)))
    for label, rows in (("report.day", day), ("report.week", week)):
        if isinstance(rows, Exception) or not rows:
            lines.append(t("report.unavailable", what=t("report.part.pnl")))
        else:
            lines.append(t(label, pnl=fmt.signed(rows[0].net_pnl), trades=rows[0].trades, wins=rows[0].wins))
    if isinstance(trades, Exception):
        lines.append(t("report.unavailable", what=t("report.part.fees")))
    else:
        midnight = dt.datetime.combine(now.astimezone(zone).date(), dt.time(0), zone)
        today = [v for v in trades if v.status == "closed" and v.close_date is not None and v.close_date >= midnight]
        lines.append(t("report.fees", fees=fmt.money(sum((v.fees for v in today), Decimal(0))),
                       funding=fmt.signed(sum((v.funding for v in today), Decimal(0)))))
    if isinstance(positions, Exception):
        lines.append(t("report.unavailable", what=t("report.part.positions")))
    elif positions:
        lines.append(t("positions.title", count=len(positions)))
        lines += fmt.position_lines(t, positions)
    else:
        lines.append(t("positions.none"))
    if isinstance(health, Exception):
        lines.append(t("report.unavailable", what=t("report.part.health")))
    else:
        lines.append(t("report.health", state=t("health.ok") if health.ok else t("health.problem"),
                       p99=fmt.ms(health.latency_p99_ms), errors=health.api_errors,
                       uptime=fmt.duration(health.uptime_s, t)))
        lines += [t("health.problem_line", problem=p) for p in health.problems]
    if isinstance(ledger, Exception):
        lines.append(t("report.unavailable", what=t("report.part.ledger")))
    elif ledger.ok:
        lines.append(t("report.ledger_ok", trades=ledger.open_trades, closed=ledger.closed_checked))
    else:
        lines.append(t("report.ledger_bad", problems="; ".join([m.detail for m in ledger.mismatches]
                                                               + ledger.errors)[:1500]))
    if supervisor is not None:
        lines += supervisor_lines(t, supervisor.summary())
    return "\n".join(lines)


def supervisor_lines(t: Translator, summary: HealthSummary) -> list[str]:
    """Component states, restarts in the last 24 h, the last self-benchmark and resource sample."""
    lines = []
    if summary.checked_at is not None:
        states = ", ".join(health_words(t, c.name, c.state) for c in summary.components)
        lines.append(t("report.components", states=states))
        lines += [t("health.problem_line", problem=f"{health_word(t, 'component', c.name)}: {c.detail}")
                  for c in summary.components if c.state in ("down", "warning") and c.detail]
    lines.append(t("report.restarts", count=summary.restarts_24h))
    bench = summary.benchmark
    if bench is not None and (bench.rest_ms is not None or bench.ledger_write_ms is not None):
        lines.append(t("report.benchmark", rest=fmt.ms(bench.rest_ms), write=fmt.ms(bench.ledger_write_ms)))
    use = summary.resources
    if use is not None:
        lines.append(t("report.resources", cpu=_share(use.cpu), rss=_share(use.rss_share),
                       disk=_share(use.disk_share)))
    return lines


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


CHART_DAYS = 14


async def chart(service: Any, t: Translator, settings: UserSettings, now: dt.datetime | None = None) -> bytes | None:
    """The report's chart, or None when the service cannot answer (the text says what is missing)."""
    now = now or await service_now(service)
    try:
        days, positions = await asyncio.gather(service.pnl("day", CHART_DAYS, settings.timezone, now=now),
                                               service.positions())
    except Exception as exc:
        log.warning("daily report chart: %s", exc)
        return None
    try:
        balance = await service.balance()
    except Exception:  # the chart is still useful without the balance line
        balance = None
    labels = {key: t(f"chart.daily.{key}", days=CHART_DAYS) for key in CHART_LABELS}
    # Rendering takes a few hundred ms of CPU: keep it off the bot's loop.
    return await asyncio.to_thread(daily_report_chart, days, positions, balance=balance, now=now,
                                   tz=settings.timezone, labels=labels)


async def service_now(service: Any) -> dt.datetime:
    """The service's 'now' (the exchange's clock in dry-run: a replay's own date), else the wall clock."""
    try:
        return await service.now()
    except Exception as exc:  # a service without a clock, or one that failed: the wall clock
        log.info("service clock unavailable (%s); using the wall clock", exc)
        return dt.datetime.now(dt.timezone.utc)


async def deliver(bot: Any, deps: BotDeps, chat_id: int, t: Translator, settings: UserSettings) -> None:
    now = await service_now(deps.service)
    text = await build(deps.service, t, settings, now=now, supervisor=deps.extras.get("health"))
    await send_text(bot, chat_id, deps.redactor(text))
    png = await chart(deps.service, t, settings, now=now)
    if png is not None:
        await bot.send_photo(chat_id, png, caption=t("chart.daily.caption"))


def job_name(user_id: int) -> str:
    return f"daily-report:{user_id}"


class ReportScheduler:
    def __init__(self, job_queue: JobQueue[Any], deps: BotDeps):
        self.job_queue = job_queue
        self.deps = deps

    def schedule(self, settings: UserSettings) -> None:
        """(Re)place the user's daily job at their local report time."""
        for job in self.job_queue.get_jobs_by_name(job_name(settings.user_id)):
            job.schedule_removal()
        when = settings.report_time.replace(tzinfo=settings.zone)
        self.job_queue.run_daily(send_report, when, name=job_name(settings.user_id), chat_id=settings.user_id,
                                 user_id=settings.user_id, data=settings.user_id)

    def unschedule(self, user_id: int) -> None:
        for job in self.job_queue.get_jobs_by_name(job_name(user_id)):
            job.schedule_removal()

    async def schedule_all(self) -> None:
        for user_id in self.deps.access.known_users():
            self.schedule(await asyncio.to_thread(self.deps.user_settings.get, user_id))


async def send_report(context: ContextTypes.DEFAULT_TYPE) -> None:
    deps: BotDeps = context.application.bot_data[DEPS_KEY]
    user_id = int(context.job.data)  # type: ignore[union-attr, arg-type]
    if deps.access.role_of(user_id) is None:  # revoked since it was scheduled
        return
    settings = await asyncio.to_thread(deps.user_settings.get, user_id)
    t = deps.catalogs.translator(settings.language)
    try:
        await deliver(context.bot, deps, user_id, t, settings)
    except TelegramError as exc:
        log.warning("daily report to %s not delivered: %s", user_id, exc)
