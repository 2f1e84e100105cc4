"""The service's result objects as plain text in the user's language and time zone.

Plain text, no parse mode: pair names, error details and user input then need no escaping, and nothing a
user or the exchange writes can break a message.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

MAX_MESSAGE = 4096

T = Callable[..., str]


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends where possible."""
    if not text:
        return ["-"]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single overlong line is cut hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current or not pieces:
        pieces.append(current or "-")
    return [p if p.strip() else "-" for p in pieces]


# -- numbers and times ----------------------------------------------------------------------------------------------
def money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def signed(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def price(value: Decimal | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    places = 2 if magnitude >= 100 else 4 if magnitude >= 1 else 6
    return f"{value:,.{places}f}"


def amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def percent(fraction: Decimal | float | None) -> str:
    return "-" if fraction is None else f"{Decimal(str(fraction)) * 100:.2f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def local_time(moment: dt.datetime | None, timezone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "-"
    return moment.astimezone(zoneinfo.ZoneInfo(timezone)).strftime(pattern)


def duration(seconds: float, t: T | None = None) -> str:
    """"1d 2h 3m" (in the user's words with ``t``)."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if t is not None:
        return t("duration.dhm", d=days, h=hours, m=minutes) if days else t("duration.hm", h=hours, m=minutes)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def short_pair(pair: str) -> str:
    return pair.split(":")[0]


LATENCY_TIERS = ("normal", "safe", "no_entries", "emergency")


def tier_word(t: T, tier: str) -> str:
    """A latency tier (trader.exchange.latency) in the user's language; an unknown one as it is."""
    return t(f"latency.tier.{tier}") if tier in LATENCY_TIERS else tier


def yes_no(t: T, value: bool) -> str:
    return t("common.yes") if value else t("common.no")


# -- views ------------------------------------------------------------------------------------------------------------
def status(t: T, view: Any) -> str:
    state = t("status.paused") if view.paused and view.running else \
        t("status.running") if view.running else t("status.stopped")
    lines = [
        t("status.title"),
        t("status.state", state=state),
        t("status.mode", mode=t("status.dry_run") if view.dry_run else t("status.live")),
        t("status.leverage", leverage=view.leverage),
        t("status.pairs", pairs=", ".join(short_pair(p) for p in view.pairs)),
        t("status.positions", count=view.open_positions if view.open_positions >= 0 else "?"),
        t("status.latency", tier=tier_word(t, view.latency_tier), p99=ms(view.latency_p99_ms)),
    ]
    if getattr(view, "ml", None) is not None:
        from bot.telegram.handlers.models import status_line

        lines.append(status_line(t, view.ml, getattr(view, "now_ms", None), getattr(view, "ml_latest", None)))
    if view.paused and not view.running:
        lines.append(t("status.entries_paused"))
    return "\n".join(lines)


def position_lines(t: T, positions: Sequence[Any]) -> list[str]:
    lines = []
    for p in positions:
        lines.append(t("positions.line", pair=short_pair(p.pair), side=t(f"side.{p.side}"), amount=amount(p.amount),
                       entry=price(p.entry_price), mark=price(p.mark_price), pnl=signed(p.unrealized_pnl),
                       leverage=p.leverage or "-"))
        lines.append(t("positions.risk", liq=price(p.liquidation_price), distance=percent(p.liquidation_distance),
                       stop=price(p.stop_price)))
    return lines


def positions(t: T, views: Sequence[Any]) -> str:
    if not views:
        return t("positions.none")
    return "\n".join([t("positions.title", count=len(views)), *position_lines(t, views)])


def balance(t: T, view: Any) -> str:
    return "\n".join([
        t("balance.title"),
        t("balance.wallet", value=money(view.wallet)),
        t("balance.available", value=money(view.available)),
        t("balance.unrealized", value=signed(view.unrealized_pnl)),
        t("balance.margin", value=money(view.margin_balance)),
        t("balance.maintenance", value=money(view.maintenance_margin), ratio=percent(view.margin_ratio)),
    ])


def pnl(t: T, period: str, rows: Sequence[Any]) -> str:
    lines = [t("pnl.title", period=t(f"pnl.period.{period}"))]
    for row in rows:
        lines.append(t("pnl.line", start=row.start.isoformat(), pnl=signed(row.net_pnl), trades=row.trades,
                       wins=row.wins))
    total = sum((r.net_pnl for r in rows), Decimal(0))
    lines.append(t("pnl.total", pnl=signed(total), trades=sum(r.trades for r in rows)))
    return "\n".join(lines)


def trades(t: T, views: Sequence[Any], timezone: str) -> str:
    if not views:
        return t("trades.none")
    lines = [t("trades.title", count=len(views))]
    for v in views:
        lines.append(t("trades.line", id=v.id, pair=short_pair(v.pair), side=t(f"side.{v.side}"),
                       status=t(f"trades.status.{v.status}") if v.status in ("open", "closed") else v.status,
                       opened=local_time(v.open_date, timezone), open=price(v.open_rate), close=price(v.close_rate),
                       pnl=signed(v.net_pnl)))
    return "\n".join(lines)


def performance(t: T, rows: Sequence[Any]) -> str:
    if not rows:
        return t("performance.none")
    lines = [t("performance.title")]
    for r in rows:
        lines.append(t("performance.line", pair=short_pair(r.pair), trades=r.trades, win_rate=percent(r.win_rate),
                       pnl=signed(r.net_pnl), fees=money(r.fees), funding=signed(r.funding)))
    return "\n".join(lines)


def health(t: T, view: Any) -> str:
    lines = [
        t("health.title", state=t("health.ok") if view.ok else t("health.problem")),
        t("health.engine", running=yes_no(t, view.engine_running)),
        t("health.db", ok=yes_no(t, view.db_ok), latency=ms(view.db_latency_ms)),
        t("health.disk", free=f"{view.disk_free_bytes / 2**30:.1f} GiB"),
        t("health.latency", tier=tier_word(t, view.latency_tier), p50=ms(view.latency_p50_ms),
          p99=ms(view.latency_p99_ms)),
        t("health.api_errors", count=view.api_errors),
        t("health.uptime", uptime=duration(view.uptime_s, t)),
    ]
    lines += [t("health.problem_line", problem=_problem(t, p)) for p in view.problems]
    return "\n".join(lines)


def _problem(t: T, text: str) -> str:
    if text.startswith("latency tier ") and text.removeprefix("latency tier ") in LATENCY_TIERS:
        return t("risk.reason.latency_tier", tier=tier_word(t, text.removeprefix("latency tier ")))
    return text


def flatten(t: T, report: Any, timezone: str) -> str:
    lines = [t("flatten.title_flat") if report.flat else t("flatten.title_incomplete")]
    if report.joined:
        lines.append(t("flatten.joined"))
    lines.append(t("flatten.cancelled", count=report.cancelled_orders))
    if report.closed:
        lines.append(t("flatten.closed_title", count=len(report.closed)))
        for fill in report.closed:
            lines.append(t("flatten.closed_line", pair=short_pair(fill.pair), side=t(f"side.{fill.side}"),
                           amount=amount(fill.amount), price=price(fill.average_price),
                           pnl=signed(fill.estimated_pnl)))
    else:
        lines.append(t("flatten.nothing_open"))
    for left in report.leftovers:
        lines.append(t("flatten.leftover", pair=short_pair(left.pair), amount=amount(left.amount),
                       reason=left.reason))
    for error in report.errors:
        lines.append(t("flatten.error", error=error))
    if not report.verified:
        lines.append(t("flatten.unverified"))
    if report.finished is not None:
        seconds = (report.finished - report.started).total_seconds()
        lines.append(t("flatten.took", seconds=f"{seconds:.1f}", at=local_time(report.finished, timezone,
                                                                                  "%H:%M:%S")))
    return "\n".join(lines)


def leverage_change(t: T, change: Any) -> str:
    return t("leverage.changed", old=change.old, new=change.new,
             pairs=", ".join(short_pair(p) for p in change.applied) or "-")


def whitelist(t: T, view: Any) -> str:
    return t("whitelist.current", pairs=", ".join(short_pair(p) for p in view.pairs))


def audit_records(t: T, records: Sequence[Any], timezone: str) -> str:
    if not records:
        return t("audit.none")
    lines = [t("audit.title", count=len(records))]
    for r in records:
        who = f"{r.actor.source}:{r.actor.user_id}" if r.actor.user_id is not None else r.actor.source
        args = ", ".join(f"{k}={v}" for k, v in sorted(r.arguments.items()))[:80]
        lines.append(t("audit.line", time=local_time(r.time, timezone, "%m-%d %H:%M:%S"), who=who,
                       action=r.action, args=args, outcome=r.outcome, detail=(r.detail or "")[:80]))
    return "\n".join(lines)
