"""The risk rules' numbers: strategy parameters (so the backtest, hyperopt and the live engine carry them the same
way) and the one mapping from the config's ``risk`` section to them.

Every strategy that sizes through ``trader.strategy.sizing.size_entry`` declares ``RISK_PARAMS``; the values are
risk-rules.md's defaults, the same as ``RiskConfig``'s. ``risk_params(settings)`` is what ``bsmart backtest
--config`` and the main job's live engine both pass, so a config's risk section acts identically in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# (name, default). Tuples stay tuples so Backtrader params and JSON exports both take them.
RISK_PARAMS: tuple[tuple[str, Any], ...] = (
    ("risk_per_trade", 0.02),
    ("max_open_trades", 3),
    ("max_coin_risk", 0.10),  # loss at the stop of all positions in one coin, share of the wallet
    ("max_total_risk", 0.10),  # loss at the stop of all open positions, share of the wallet
    ("budget_trades_per_day", 6.0),  # the total budget is full up to this entry rate, then scaled by rate/this
    ("budget_floor", 0.25),  # ... but never below this share of it
    ("loss_streak", 3),  # after this many losses in a row the size is multiplied by streak_size until a win
    ("streak_size", 0.5),
    ("max_drawdown", 0.2),  # wallet below its peak by more than this: the total budget × drawdown_budget
    ("drawdown_budget", 0.5),
    ("correlation_max", 0.8),  # same-direction entries refused above this 1h-return correlation with an open one
    ("correlation_hours", 72),  # rolling window of hourly returns
    ("volatility_percentile", 0.9),  # ATR/price rank above this: size × volatility_size, leverage unchanged
    ("volatility_window", 500),  # feed bars the ATR/price rank is taken over
    ("volatility_size", 0.5),
    # Per-trade risk by wallet size, marginal like tax brackets so a bigger wallet never risks fewer USDT:
    # (wallet above, share of risk_per_trade on that part).
    ("account_tiers", ((10_000.0, 0.75), (50_000.0, 0.5), (250_000.0, 0.3))),
    # Total budget multiplier per market regime of the pair (DynamicRiskBudgeting); unknown: no regime reading.
    ("regime_budget", (("ranging", 1.0), ("trending", 1.0), ("breakout", 0.75), ("volatile", 0.5),
                       ("unknown", 1.0))),
    ("stake_amount", 0.0),  # the margin one entry may post, USDT; 0: unlimited (the config's "unlimited")
)
RISK_PARAM_NAMES = tuple(name for name, _ in RISK_PARAMS)

# Below this share of what a rule-free entry would risk, a squeezed entry is skipped: the crumbs of a spent
# budget would open dust positions that pay fees and protect nothing.
MIN_RISK_SHARE = 0.25


@dataclass(frozen=True)
class RiskLimits:
    risk_per_trade: float = 0.02
    max_open_trades: int = 3
    max_coin_risk: float = 0.10
    max_total_risk: float = 0.10
    budget_trades_per_day: float = 6.0
    budget_floor: float = 0.25
    loss_streak: int = 3
    streak_size: float = 0.5
    max_drawdown: float = 0.2
    drawdown_budget: float = 0.5
    correlation_max: float = 0.8
    correlation_hours: int = 72
    volatility_percentile: float = 0.9
    volatility_window: int = 500
    volatility_size: float = 0.5
    account_tiers: tuple[tuple[float, float], ...] = ((10_000.0, 0.75), (50_000.0, 0.5), (250_000.0, 0.3))
    regime_budget: tuple[tuple[str, float], ...] = (("ranging", 1.0), ("trending", 1.0), ("breakout", 0.75),
                                                    ("volatile", 0.5), ("unknown", 1.0))
    stake_amount: float = 0.0

    def regime_factor(self, regime: str) -> float:
        table = dict(self.regime_budget)
        return float(table.get(regime, table.get("unknown", 1.0)))


def limits_from_params(params: Mapping[str, Any] | Any) -> RiskLimits:
    """RiskLimits from a strategy's parameters (a mapping, or Backtrader's ``self.p``)."""
    get = params.get if isinstance(params, Mapping) else (lambda k, d=None: getattr(params, k, d))
    values: dict[str, Any] = {}
    for name, default in RISK_PARAMS:
        v = get(name, default)
        if name in ("account_tiers",):
            v = tuple((float(a), float(b)) for a, b in v)
        elif name == "regime_budget":
            v = tuple((str(a), float(b)) for a, b in (v.items() if isinstance(v, Mapping) else v))
        elif name in ("max_open_trades", "loss_streak", "correlation_hours", "volatility_window"):
            v = int(v)
        else:
            v = float(v)
        values[name] = v
    return RiskLimits(**values)


def risk_params(settings: Any) -> dict[str, Any]:
    """The config's ``risk`` section (and ``max_open_trades``, ``stake_amount``) as strategy parameters: the rules
    above plus the stop and exit settings the strategies declare under their own names. Callers keep the keys the
    strategy declares (``declared_risk_params``)."""
    r = settings.risk
    stake = settings.stake_amount
    return {
        "risk_per_trade": r.risk_per_trade,
        "max_open_trades": settings.max_open_trades,
        "max_coin_risk": r.max_coin_risk,
        "max_total_risk": r.max_total_risk,
        "budget_trades_per_day": r.budget.trades_per_day,
        "budget_floor": r.budget.floor,
        "loss_streak": r.loss_streak,
        "streak_size": r.streak_size,
        "max_drawdown": r.max_drawdown,
        "drawdown_budget": r.drawdown_budget,
        "correlation_max": r.correlation_max,
        "correlation_hours": r.correlation_hours,
        "volatility_percentile": r.volatility_percentile,
        "volatility_window": r.volatility_window,
        "volatility_size": r.volatility_size,
        "account_tiers": tuple((float(t.above), float(t.risk)) for t in r.account_tiers),
        "regime_budget": tuple((k, float(v)) for k, v in r.regime_budget.model_dump().items()),
        "stake_amount": 0.0 if stake == "unlimited" else float(Decimal(stake)),
        "atr_period": r.atr_period,
        "atr_multiplier": r.atr_multiplier,
        "stop_leverage_factor": r.stop_leverage_factor,
        "tp_moves": tuple(t.move for t in r.take_profit),
        "tp_shares": tuple(t.close for t in r.take_profit),
        "trail_atr_multiplier": r.trailing_atr_multiplier,
    }


def declared_risk_params(settings: Any, declared: Mapping[str, Any]) -> dict[str, Any]:
    """``risk_params(settings)`` restricted to the parameters a strategy declares (``cls.param_values()``)."""
    return {k: v for k, v in risk_params(settings).items() if k in declared}
