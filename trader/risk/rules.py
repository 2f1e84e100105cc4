"""The risk rules as pure functions, and ``decide_entry``, which applies all of them to one entry.

Each rule either scales the entry's risk (a share of the wallet lost at the stop), lowers the total budget, or
blocks the entry; ``decide_entry`` records every rule that acted with its numbers (``RuleHit``) so the caller can
publish it (live), count it (backtest) and show it (/risk). Nothing here reads a clock, a broker or a feed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trader.risk.hourly import hourly_returns, returns_correlation
from trader.risk.limits import MIN_RISK_SHARE, RiskLimits

# Rule names (events, counts, /risk and the message catalogs use these).
RULES = ("max_open_trades", "coin_risk", "total_risk", "frequency", "drawdown", "regime", "loss_streak",
         "volatility", "account_tier", "correlation", "stake_amount", "market")


def account_tier_risk(wallet: float, risk_per_trade: float, tiers: Sequence[tuple[float, float]]) -> float:
    """Per-trade risk as a share of the wallet after the account-size tiers (risk-rules.md: up to 10,000 USDT
    standard, above it falling in steps). Marginal, like tax brackets: the part of the wallet above each tier's
    threshold risks that tier's share of ``risk_per_trade``, so one more USDT never lowers the USDT at risk."""
    if wallet <= 0:
        return risk_per_trade
    amount, lower, share = 0.0, 0.0, 1.0
    for above, tier_share in sorted(tiers):
        if wallet <= above:
            break
        amount += (above - lower) * share
        lower, share = above, tier_share
    amount += (wallet - lower) * share
    return risk_per_trade * amount / wallet


def streak_factor(losses_in_a_row: int, limits: RiskLimits) -> float:
    """Size multiplier after ``loss_streak`` consecutive losses (until the next win)."""
    return limits.streak_size if losses_in_a_row >= limits.loss_streak else 1.0


def drawdown(peak: float, wallet: float) -> float:
    """How far the wallet is below its peak, as a fraction of the peak (0 at or above it)."""
    return max(0.0, 1.0 - wallet / peak) if peak > 0 else 0.0


def drawdown_factor(dd: float, limits: RiskLimits) -> float:
    """Total budget multiplier: lowered while the drawdown is beyond ``max_drawdown``."""
    return limits.drawdown_budget if dd > limits.max_drawdown else 1.0


def frequency_factor(trades_per_day: float, limits: RiskLimits) -> float:
    """Total budget multiplier by trading frequency (risk-rules.md: the more often a strategy trades, the lower the
    budget): 1 up to ``budget_trades_per_day``, then proportional to the rate's inverse, floored."""
    if trades_per_day <= limits.budget_trades_per_day:
        return 1.0
    return max(limits.budget_floor, limits.budget_trades_per_day / trades_per_day)


def percentile_rank(window: np.ndarray, current: float) -> float:
    """Mid-rank of ``current`` among the finite values in ``window`` (ties count half, so a market whose ATR never
    changes sits at 0.5, not at the top); NaN when nothing is known."""
    w = window[np.isfinite(window)]
    if not len(w) or not math.isfinite(current):
        return math.nan
    return (float(np.count_nonzero(w < current)) + 0.5 * float(np.count_nonzero(w == current))) / len(w)


def volatility_factor(rank: float, limits: RiskLimits) -> float:
    """Size multiplier in a volatility spike (ATR/price rank above the threshold); leverage itself is fixed."""
    return limits.volatility_size if math.isfinite(rank) and rank > limits.volatility_percentile else 1.0


def correlation(a: Mapping[int, float], b: Mapping[int, float], min_points: int) -> float:
    """Pearson correlation of two coins' hourly returns (closes keyed by hour; a return only between consecutive
    hours) over the hours both have; NaN with fewer than ``min_points`` common returns or a flat series. The book
    keeps its closes as ``HourlyCloses`` and calls ``returns_correlation`` directly; this is the same rule on plain
    mappings."""
    ha, hb = sorted(a), sorted(b)
    ra, rb = hourly_returns(ha, [a[h] for h in ha]), hourly_returns(hb, [b[h] for h in hb])
    return returns_correlation((np.array(ra[0], dtype="int64"), np.array(ra[1])),
                               (np.array(rb[0], dtype="int64"), np.array(rb[1])), min_points)


@dataclass(frozen=True)
class RuleHit:
    rule: str
    effect: str  # "blocked" | "shrunk" | "lowered" (the total budget)
    values: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenRisk:
    pair: str
    coin: str
    side: int
    risk: float  # loss at the stop, share of the wallet when sized


@dataclass(frozen=True)
class EntryInputs:
    """What the rules read about one entry and the account at the moment of the decision."""

    pair: str
    coin: str
    side: int
    base_risk: float  # risk_per_trade × the strategy's own multipliers (grade, fusion, latency safe mode)
    wallet: float
    peak_wallet: float
    losses_in_a_row: int
    trades_per_day: float
    vol_rank: float  # ATR/price percentile rank of the signal's timeframe; NaN: not known yet
    regime: str
    open_positions: tuple[OpenRisk, ...]
    correlations: Mapping[str, float]  # open pair -> correlation of its hourly returns with this pair's
    market_factor: float = 1.0  # the market-side rules (liquidity tier, maintenance): 0 blocks
    market_rule: str = ""
    market_values: Mapping[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class EntryDecision:
    risk: float  # share of the wallet to lose at the stop; 0 = blocked
    wanted: float  # what the entry would risk under no account rule (base × account tier)
    hits: tuple[RuleHit, ...]

    @property
    def blocked(self) -> RuleHit | None:
        return next((h for h in self.hits if h.effect == "blocked"), None)


def slots_hit(open_count: int, limits: RiskLimits) -> RuleHit | None:
    """The max-open-trades rule: a block when every slot is taken."""
    if open_count >= limits.max_open_trades:
        return RuleHit("max_open_trades", "blocked", {"open": open_count, "limit": limits.max_open_trades})
    return None


def decide_entry(x: EntryInputs, limits: RiskLimits) -> EntryDecision:
    """Every account rule on one entry. Order: blocks first (open trades, correlation, market), then the size
    multipliers (account tier, loss streak, volatility, market), then the caps (per coin, and the total budget
    after frequency, drawdown and regime); an entry squeezed below ``MIN_RISK_SHARE`` of what it wanted is
    skipped, naming the cap that squeezed it."""
    hits: list[RuleHit] = []
    wanted = account_tier_risk(x.wallet, x.base_risk, limits.account_tiers)
    if wanted < x.base_risk * (1 - 1e-12):
        hits.append(RuleHit("account_tier", "shrunk", {"wallet": round(x.wallet, 2), "from": x.base_risk,
                                                       "to": wanted}))
    full = slots_hit(len(x.open_positions), limits)
    if full is not None:
        return EntryDecision(0.0, wanted, (*hits, full))
    for other in x.open_positions:
        if other.side != x.side or other.pair == x.pair:
            continue
        rho = x.correlations.get(other.pair, math.nan)
        if math.isfinite(rho) and rho > limits.correlation_max:
            return EntryDecision(0.0, wanted, (*hits, RuleHit("correlation", "blocked", {
                "with": other.pair, "correlation": round(rho, 3), "limit": limits.correlation_max})))
    if x.market_factor <= 0:
        return EntryDecision(0.0, wanted, (*hits, RuleHit(x.market_rule or "market", "blocked",
                                                          dict(x.market_values))))
    risk = wanted
    streak = streak_factor(x.losses_in_a_row, limits)
    if streak < 1:
        hits.append(RuleHit("loss_streak", "shrunk", {"losses": x.losses_in_a_row, "limit": limits.loss_streak,
                                                      "factor": streak}))
        risk *= streak
    vol = volatility_factor(x.vol_rank, limits)
    if vol < 1:
        hits.append(RuleHit("volatility", "shrunk", {"percentile": round(x.vol_rank, 3),
                                                     "limit": limits.volatility_percentile, "factor": vol}))
        risk *= vol
    if x.market_factor < 1:
        hits.append(RuleHit(x.market_rule or "market", "shrunk", {**x.market_values, "factor": x.market_factor}))
        risk *= x.market_factor
    # The caps.
    coin_open = sum(p.risk for p in x.open_positions if p.coin == x.coin)
    coin_room = limits.max_coin_risk - coin_open
    budget = limits.max_total_risk
    for rule, factor, values in (
        ("frequency", frequency_factor(x.trades_per_day, limits),
         {"trades_per_day": round(x.trades_per_day, 2), "limit": limits.budget_trades_per_day}),
        ("drawdown", drawdown_factor(drawdown(x.peak_wallet, x.wallet), limits),
         {"drawdown": round(drawdown(x.peak_wallet, x.wallet), 4), "limit": limits.max_drawdown}),
        ("regime", limits.regime_factor(x.regime), {"regime": x.regime}),
    ):
        if factor < 1:
            budget *= factor
            hits.append(RuleHit(rule, "lowered", {**values, "factor": round(factor, 4),
                                                  "budget": round(budget, 6)}))
    total_open = sum(p.risk for p in x.open_positions)
    total_room = budget - total_open
    capped = min(risk, coin_room, total_room)
    if capped < risk:
        rule, limit, used = (("coin_risk", limits.max_coin_risk, coin_open) if coin_room <= total_room
                             else ("total_risk", budget, total_open))
        # A lowered budget that binds is named by what lowered it, the budget itself otherwise.
        lowered = [h.rule for h in hits if h.effect == "lowered"]
        unlowered_room = limits.max_total_risk - total_open
        if rule == "total_risk" and len(lowered) == 1 and min(coin_room, unlowered_room) >= risk:
            rule = lowered[0]
        values = {"used": round(used, 6), "limit": round(limit, 6), "wanted": round(risk, 6),
                  "room": round(max(0.0, capped), 6)}
        if capped <= 0 or capped < MIN_RISK_SHARE * risk:
            return EntryDecision(0.0, wanted, (*hits, RuleHit(rule, "blocked", values)))
        hits.append(RuleHit(rule, "shrunk", values))
        risk = capped
    return EntryDecision(risk, wanted, tuple(hits))
