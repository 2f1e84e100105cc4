"""Read-only commands: status, positions, balance, PnL, trades, performance, health, the report now, the running
strategy's signals."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

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


async def signals(request: Request) -> None:
    if len(request.args) > 1:
        await args.usage(request)
        return
    pair = None
    if request.args:
        found = await args.pairs(request, request.args)
        if found is None:
            return
        pair = found[0]
    view = await request.service.signals(pair)
    await request.reply(signals_text(request.t, view, request.caller.settings.timezone))


def _num(x: Any, pattern: str = "{:+.2f}") -> str:
    return pattern.format(x) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def _ml_lines(t: Any, ml: dict[str, Any] | None, tz: str) -> list[str]:
    """The model's newest prediction of the pair (none when no model is active)."""
    if not ml:
        return []
    at = fmt.local_time(dt.datetime.fromtimestamp(ml["at_ms"] / 1000, dt.UTC), tz, "%m-%d %H:%M")
    if ml.get("score") is None:
        return [t("signals.ml_withheld", time=at, reason=str(ml.get("reason") or "-")[:120])]
    out = [t("signals.ml", time=at, score=_num(ml["score"]),
             models=", ".join(f"{k} {v}" for k, v in sorted((ml.get("models") or {}).items())) or "-")]
    if ml.get("abstained"):
        out.append(t("signals.ml_abstained", reason=str(ml["abstained"])[:120]))
    return out


def _pattern_lines(t: Any, patterns: Any, tz: str) -> list[str]:
    """Chart patterns completed recently (each with its completion bar's close)."""
    if not patterns:
        return []
    arrows = {1: "↑", -1: "↓", 0: "↕"}
    items = [f"{p['kind'].replace('_', ' ')} {p['timeframe']} {arrows.get(p.get('direction'), '')} "
             f"{fmt.local_time(dt.datetime.fromtimestamp(p['completion_ms'] / 1000, dt.UTC), tz, '%m-%d %H:%M')}"
             for p in patterns]
    return [t("signals.patterns", patterns="; ".join(items))]


def signals_text(t: Any, view: Any, tz: str) -> str:
    """/signals: per pair the regime, route (or the single setup), last graded signal, position, the model's
    newest prediction and recent patterns, then the fusion weights per regime (master only)."""
    if not view.running:
        return t("signals.stopped", strategy=view.strategy)
    if not view.available:
        return t("signals.no_view", strategy=view.strategy)
    lines = [t("signals.title", strategy=view.strategy)]
    for pair, row in sorted(view.pairs.items()):
        lines.append("")
        head = (t("signals.pair", pair=fmt.short_pair(pair), regime=row.get("regime"), route=row.get("route", "-"))
                if row.get("regime") else t("signals.pair_single", pair=fmt.short_pair(pair),
                                            setup=row.get("route", "-")))
        lines.append(head + ("" if row.get("ready", True) else " " + t("signals.warming")))
        last = row.get("last_signal")
        if last:
            at = dt.datetime.fromtimestamp(last["at_ms"] / 1000, dt.UTC) if last.get("at_ms") else None
            side = t("side.long" if last.get("side", 0) > 0 else "side.short")
            lines.append(t("signals.last", time=fmt.local_time(at, tz, "%m-%d %H:%M"), side=side,
                           setup=last.get("setup", "-"), grade=last.get("grade", "-"),
                           score=_num(last.get("score")),
                           outcome=t("signals.taken" if last.get("taken") else "signals.skipped")))
        else:
            lines.append(t("signals.none"))
        pos = row.get("position")
        if pos:
            side = t("side.long" if pos.get("side", 0) > 0 else "side.short")
            lines.append(t("signals.position", side=side, setup=pos.get("setup") or "-", grade=pos.get("grade", "-")))
        lines += _ml_lines(t, row.get("ml"), tz) + _pattern_lines(t, row.get("patterns") or (), tz)
    if view.fusion:
        lines += ["", t("signals.fusion")]
        by_regime: dict[str, list[str]] = {}
        for r in view.fusion:
            mark = " 🔇" if r.get("muted") else ""
            by_regime.setdefault(str(r.get("regime")), []).append(
                f"{r.get('source')} {_num(r.get('weight'), '{:.2f}')} "
                f"({_num(r.get('hit_rate'), '{:.0%}')}, n={r.get('n', 0)}){mark}")
        lines += [f"{regime}: " + " · ".join(parts) for regime, parts in by_regime.items()]
    return "\n".join(lines)


COMMANDS = [
    Command("status", status, "viewer", "read", "help.status", group="account"),
    Command("positions", positions, "viewer", "read", "help.positions", group="account"),
    Command("balance", balance, "viewer", "read", "help.balance", group="account"),
    Command("pnl", pnl, "viewer", "read", "help.pnl", group="account"),
    Command("trades", trades, "viewer", "read", "help.trades", group="account"),
    Command("performance", performance, "viewer", "read", "help.performance", group="account"),
    Command("health", health, "viewer", "read", "help.health", group="account"),
    Command("report", report_now, "viewer", "read", "help.report", group="account"),
    Command("signals", signals, "viewer", "read", "help.signals", group="account"),
]
