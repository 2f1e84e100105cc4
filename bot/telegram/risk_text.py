"""The risk rules in words: a rule's decision (the ``risk_rule`` notification) and every rule's state (/risk)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.market_text import MARKET_RULES, market_detail, market_lines

# trader.risk.rules.RULES plus the market-side rules; any other name is shown as it comes.
RULES = ("max_open_trades", "coin_risk", "total_risk", "frequency", "drawdown", "regime", "loss_streak",
         "volatility", "account_tier", "correlation", "stake_amount", "market", "liquidity", "maintenance")
EFFECTS = ("blocked", "shrunk")
_CAPS = ("coin_risk", "total_risk", "frequency", "drawdown", "regime")
# Values that are shares of the wallet (shown as percentages).
_SHARES = ("used", "limit", "wanted", "room", "from", "to", "risk")


def _pct(x: Any) -> str:
    return f"{float(x) * 100:.2f}%" if isinstance(x, int | float) and math.isfinite(x) else str(x)


def _num(x: Any, pattern: str = "{:.2f}") -> str:
    return pattern.format(x) if isinstance(x, int | float) and math.isfinite(x) else str(x)


def rule_word(t: Translator, rule: str) -> str:
    return t(f"risk.rule.{rule}") if rule in RULES else rule


def rule_detail(t: Translator, rule: str, values: Mapping[str, Any]) -> str:
    """The numbers a rule decided on, in a sentence of the user's language."""
    v = dict(values)
    if rule in _CAPS and {"used", "limit", "wanted"} <= set(v):
        return t("risk.detail.cap", used=_pct(v["used"]), limit=_pct(v["limit"]), wanted=_pct(v["wanted"]),
                 room=_pct(v.get("room", 0.0)))
    if rule == "max_open_trades" and {"open", "limit"} <= set(v):
        return t("risk.detail.max_open_trades", open=v["open"], limit=v["limit"])
    if rule == "correlation" and {"with", "correlation", "limit"} <= set(v):
        return t("risk.detail.correlation", pair=fmt.short_pair(str(v["with"])), rho=_num(v["correlation"]),
                 limit=_num(v["limit"]))
    if rule == "loss_streak" and {"losses", "factor"} <= set(v):
        return t("risk.detail.loss_streak", losses=v["losses"], factor=_num(v["factor"]))
    if rule == "volatility" and {"percentile", "limit", "factor"} <= set(v):
        return t("risk.detail.volatility", rank=_pct(v["percentile"]), limit=_pct(v["limit"]),
                 factor=_num(v["factor"]))
    if rule == "account_tier" and {"wallet", "from", "to"} <= set(v):
        return t("risk.detail.account_tier", wallet=_num(v["wallet"]), old=_pct(v["from"]), new=_pct(v["to"]))
    if rule in MARKET_RULES:
        return market_detail(t, rule, v)
    if rule == "stake_amount" and {"limit", "risk"} <= set(v):
        return t("risk.detail.stake_amount", limit=_num(v["limit"]), risk=_pct(v["risk"]))
    return ", ".join(f"{k} {_pct(x) if k in _SHARES else _num(x) if isinstance(x, float) else x}"
                     for k, x in v.items())


def decision_text(t: Translator, rule: str, effect: str, pair: str | None, side: str | None,
                  values: Mapping[str, Any]) -> str:
    """One decision (the notification of a RiskRuleHit event)."""
    return t("event.msg.risk_rule", rule=rule_word(t, rule),
             effect=t(f"risk.effect.{effect}") if effect in EFFECTS else effect,
             pair=fmt.short_pair(pair) if pair else "-",
             side=t(f"side.{side}") if side in ("long", "short") else "-",
             detail=rule_detail(t, rule, values))


def risk_text(t: Translator, view: Any, tz: str) -> str:
    """/risk: each rule's live state, then the latest decisions."""
    lim = view.limits
    if not view.running or view.state is None:
        key = "risk.stopped" if not view.running else "risk.no_view"
        return "\n".join([t(key, strategy=view.strategy), t("risk.limits", per_trade=_pct(lim["risk_per_trade"]),
                          coin=_pct(lim["max_coin_risk"]), total=_pct(lim["max_total_risk"]),
                          streak=lim["loss_streak"], drawdown=_pct(lim["max_drawdown"]),
                          corr=_num(lim["correlation_max"]), vol=_pct(lim["volatility_percentile"]))])
    s = view.state
    lines = [t("risk.title", strategy=view.strategy),
             t("risk.budget", used=_pct(s["used"]), budget=_pct(s["budget"]), limit=_pct(s["max_total_risk"]),
               open=s["open_trades"], slots=s["max_open_trades"]),
             t("risk.frequency", rate=_num(s["trades_per_day"]), limit=_num(s["frequency_limit"], "{:g}"))]
    coins = " · ".join(f"{c} {_pct(r)}" for c, r in sorted(s["coins"].items())) or "-"
    lines.append(t("risk.coins", coins=coins, limit=_pct(s["max_coin_risk"])))
    lines.append(t("risk.streak", losses=s["losses_in_a_row"], limit=s["loss_streak"],
                   factor=_num(s["streak_factor"])))
    lines.append(t("risk.drawdown", dd=_pct(s["drawdown"]), limit=_pct(s["max_drawdown"]),
                   peak=_num(s["peak_wallet"])))
    vols = " · ".join(f"{fmt.short_pair(p)} {_pct(r)}" for p, r in sorted(s["vol_rank"].items())) or "-"
    lines.append(t("risk.volatility", ranks=vols, limit=_pct(s["volatility_percentile"])))
    lines.append(t("risk.correlation", blocks=s["correlation_blocks"], limit=_num(s["correlation_max"])))
    for rule in ("liquidity", "maintenance"):  # the market-side rules, when the engine carries them
        if rule in s.get("counts", {}):
            per = s["counts"][rule]
            lines.append(f"{rule_word(t, rule)}: " + ", ".join(f"{t(f'risk.effect.{e}') if e in EFFECTS else e} {n}"
                                                               for e, n in sorted(per.items())))
    market = getattr(view, "market", None)
    if market:  # the market side: liquidity tiers and maintenance (trader/execution/market.py)
        lines += ["", t("execution.market_title"), *market_lines(t, market, tz)]
    recent = s.get("recent") or []
    if recent:
        lines += ["", t("risk.recent")]
        for r in recent[-5:]:
            at = dt.datetime.fromtimestamp(r["at_ms"] / 1000, dt.UTC) if r.get("at_ms") else None
            lines.append(f"{fmt.local_time(at, tz, '%m-%d %H:%M')} " + decision_text(
                t, r["rule"], r["effect"], r["pair"], "long" if r["side"] > 0 else "short", r["values"]))
    return "\n".join(lines)


def tuning_text(t: Translator, p: Any, days: int) -> str:
    """/risktune: the values in force and the proposal (or why there is none), with the scores behind it."""
    lines = [t("risktune.title", days=days, trades=p.trades),
             t("risktune.scores", train_before=_num(p.train_before), train_after=_num(p.train_after),
               test_before=_num(p.test_before), test_after=_num(p.test_after))]
    if not p.proposed:
        return "\n".join([*lines, t("risktune.keep")])
    lines.append(t("risktune.proposal"))
    for key, new in p.proposed.items():
        old = p.current.get(key)
        shown = (_pct(old), _pct(new)) if key in ("risk_per_trade", "max_total_risk", "max_drawdown") else (
            _num(old, "{:g}"), _num(new, "{:g}"))
        lines.append(f"  {key}: {shown[0]} → {shown[1]}")
    return "\n".join(lines)
