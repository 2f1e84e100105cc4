"""The market side in words: liquidity tiers, maintenance windows, the decisions they make (notifications,
refusals) and /execution's execution quality per pair."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from bot.i18n import Translator
from bot.telegram import formatting as fmt

TIERS = ("normal", "mild", "moderate", "severe")
MARKET_RULES = ("liquidity", "maintenance")


def _num(x: Any, pattern: str = "{:,.0f}") -> str:
    return pattern.format(x) if isinstance(x, int | float) and math.isfinite(x) else "-"


def _when(ms: Any, tz: str) -> str:
    if not isinstance(ms, int | float):
        return str(ms)
    return fmt.local_time(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc), tz)


def tier_word(t: Translator, tier: Any) -> str:
    return t(f"market.tier.{tier}") if tier in TIERS else str(tier)


def liquidity_detail(t: Translator, v: Mapping[str, Any]) -> str:
    spread = v.get("spread")
    text = t("market.detail.liquidity", tier=tier_word(t, v.get("tier")), depth=_num(v.get("depth")),
             required=_num(v.get("required")), health=_num(v.get("health"), "{:.2f}"),
             spread=fmt.percent(spread) if isinstance(spread, int | float) and math.isfinite(spread) else "-")
    if "stage" in v:
        text += " — " + t("market.detail.stage", stage=v["stage"], stages=v.get("stages", "?"),
                          quantity=v.get("quantity", "-"))
    return text


def maintenance_detail(t: Translator, v: Mapping[str, Any]) -> str:
    phase = v.get("phase")
    if phase == "upcoming":
        return t("market.detail.maintenance_upcoming", start=v.get("start", "-"), end=v.get("end", "-"),
                 lead=v.get("lead_min", "-"))
    if phase == "active":
        return t("market.detail.maintenance_active", end=v.get("end", "-"))
    if phase == "ended":
        return t("market.detail.maintenance_ended")
    return ", ".join(f"{k} {x}" for k, x in v.items())


def market_detail(t: Translator, rule: str, values: Mapping[str, Any]) -> str:
    return liquidity_detail(t, values) if rule == "liquidity" else maintenance_detail(t, values)


def action_text(t: Translator, action: str, pair: str | None, rule: str, values: Mapping[str, Any]) -> str:
    """A market-side RiskAction (tier change, refusal, staged close part, window start/end) as a notification."""
    word = t(f"risk.action.{action}") if action in MARKET_ACTIONS else action
    detail = market_detail(t, rule, values)
    if pair:
        return t("event.msg.market_action", action=word, pair=fmt.short_pair(pair), detail=detail)
    return t("event.msg.market_action_account", action=word, detail=detail)


MARKET_ACTIONS = ("entries_blocked", "entries_resumed", "size_halved", "liquidity_close", "entry_refused")


def execution_text(t: Translator, view: Any, tz: str) -> str:
    """/execution."""
    lines = [t("execution.title", days=view.days, mode=t("execution.mode.dry_run" if view.dry_run
                                                          else "execution.mode.live"))]
    if not view.pairs:
        lines.append(t("execution.none", days=view.days))
    for q in view.pairs:
        lines.append(t("execution.pair", pair=fmt.short_pair(q.pair), n=q.executions, notional=_num(q.notional),
                       slip=_num(q.slippage_bp, "{:+.1f}"), worst=_num(q.worst_slippage_bp, "{:+.1f}"),
                       ttf=fmt.ms(q.time_to_fill_ms), maker=fmt.percent(q.maker_share), sliced=q.sliced,
                       fallback=q.fallbacks))
    lines.append("")
    market = view.market
    if not view.running:
        lines.append(t("execution.stopped"))
        return "\n".join(lines)
    if market is None:
        lines.append(t("execution.no_market"))
        return "\n".join(lines)
    lines.append(t("execution.market_title"))
    lines += market_lines(t, market, tz)
    return "\n".join(lines)


def market_lines(t: Translator, market: Mapping[str, Any], tz: str) -> list[str]:
    """Each pair's liquidity tier, the maintenance schedule and any staged close (/execution and /risk)."""
    lines: list[str] = []
    for pair, reading in (market.get("liquidity") or {}).items():
        if reading is None:
            why = (market.get("missing") or {}).get(pair)
            lines.append(t("execution.volume_unknown" if why == "volume" else "execution.liquidity_unknown",
                           pair=fmt.short_pair(pair)))
        else:
            lines.append(t("execution.liquidity", pair=fmt.short_pair(pair), detail=liquidity_detail(t, reading)))
    m = market.get("maintenance") or {}
    nxt = m.get("next")
    if m.get("phase") == "active" and nxt:
        lines.append(t("market.detail.maintenance_active", end=_when(nxt.get("end_ms"), tz)))
    elif nxt:
        lines.append(t("execution.maintenance_next", start=_when(nxt.get("start_ms"), tz),
                       end=_when(nxt.get("end_ms"), tz), lead=m.get("lead_min", "-"),
                       blocked=t("execution.blocked_now") if m.get("phase") == "upcoming" else ""))
    else:
        lines.append(t("execution.maintenance_none"))
    for pair in market.get("closing") or ():
        lines.append(t("execution.closing", pair=fmt.short_pair(pair)))
    return lines
