"""Every key of the config's ``risk`` section (recursively) is read by something that acts on it.

For each key path of RiskConfig the test sets the key to an extreme value and checks that a decision changes:
- the account rules (trader/risk): the entry decisions of a fixed set of situations (``decide_entry`` on the limits
  ``risk_params(settings)`` makes), the correlation and volatility readings of a RiskBook;
- the stops and exits: a scripted backtest's trades (the strategy parameters ``declared_risk_params`` makes — the
  very mapping ``bsmart backtest --config`` and the live engine use);
- latency tiers: the tier the client built from the settings assigns to a round trip.
A key read only where the running system is composed (the main job) or by the market side (liquidity, maintenance:
their own modules and tests) is checked by its reader naming it. A key with no probe fails the test, so a new key
needs a reader before it can land.
"""

from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel
from risk_helpers import BTC, LONG, Scripted, frame, run

from trader.config.schema import RiskConfig, Settings
from trader.exchange.factory import client_from_settings
from trader.risk.book import RiskBook
from trader.risk.limits import declared_risk_params, limits_from_params, risk_params
from trader.risk.rules import EntryInputs, OpenRisk, decide_entry
from trader.strategy.sizing import vol_rank

REPO = Path(__file__).resolve().parents[2]


def key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Leaf key paths; a list of models is walked as ``name[]``."""
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = typing.get_args(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += key_paths(ann, f"{prefix}{name}.")
        elif typing.get_origin(ann) is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            out += key_paths(args[0], f"{prefix}{name}[].")
        else:
            out.append(prefix + name)
    return out


def with_key(path: str, value: Any) -> Settings:
    """Settings whose ``risk.<path>`` is ``value`` (for ``name[]`` paths: in every item of the list)."""
    risk = RiskConfig().model_dump(mode="json")

    def put(node: Any, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if head.endswith("[]"):
            for item in node[head[:-2]]:
                put(item, rest)
        elif rest:
            put(node[head], rest)
        else:
            node[head] = value

    put(risk, path.split("."))
    return Settings(risk=risk)


# -- observers --------------------------------------------------------------------------------------------------
def _limits(settings: Settings):
    return limits_from_params(risk_params(settings))


SITUATIONS = [
    # (wallet, peak, losses, trades/day, vol rank, regime, open positions, correlations, market factor)
    (10_000, 10_000, 0, 1.0, 0.5, "unknown", (), {}),
    (60_000, 60_000, 0, 1.0, 0.5, "unknown", (), {}),  # account tiers
    (300_000, 300_000, 0, 1.0, 0.5, "unknown", (), {}),
    (10_000, 10_000, 3, 1.0, 0.5, "unknown", (), {}),  # loss streak
    (10_000, 10_000, 1, 1.0, 0.5, "unknown", (), {}),
    (10_000, 13_000, 0, 1.0, 0.5, "unknown", (OpenRisk(ETH := "ETH/USDT:USDT", "ETH", 1, 0.02),), {}),  # drawdown
    (10_000, 10_000, 0, 20.0, 0.5, "unknown", (OpenRisk(ETH, "ETH", 1, 0.02),), {}),  # frequency
    (10_000, 10_000, 0, 7.0, 0.5, "unknown", (OpenRisk(ETH, "ETH", 1, 0.05),), {}),
    (10_000, 10_000, 0, 1.0, 0.95, "unknown", (), {}),  # volatility
    (10_000, 10_000, 0, 1.0, 0.85, "unknown", (), {}),
    (10_000, 10_000, 0, 1.0, 0.5, "ETH", (OpenRisk(ETH, "ETH", 1, 0.02),), {ETH: 0.85}),  # correlation
    (10_000, 10_000, 0, 1.0, 0.5, "unknown", (OpenRisk(ETH, "ETH", 1, 0.02),), {ETH: 0.7}),
    (10_000, 10_000, 0, 1.0, 0.5, "unknown", (OpenRisk("BTC/USDC:USDC", "BTC", 1, 0.09),), {}),  # per coin
    (10_000, 10_000, 0, 1.0, 0.5, "unknown", (OpenRisk(ETH, "ETH", 1, 0.09),), {}),  # total
] + [(10_000, 10_000, 0, 1.0, 0.5, regime, (OpenRisk(ETH, "ETH", 1, 0.05),), {})
     for regime in ("ranging", "trending", "breakout", "volatile", "unknown")]


def decisions(settings: Settings) -> tuple:
    lim = _limits(settings)
    out = []
    for wallet, peak, losses, tpd, vol, regime, open_, corr in SITUATIONS:
        x = EntryInputs(pair=BTC, coin="BTC", side=1, base_risk=lim.risk_per_trade, wallet=wallet, peak_wallet=peak,
                        losses_in_a_row=losses, trades_per_day=tpd, vol_rank=vol, regime=regime,
                        open_positions=open_, correlations=corr)
        d = decide_entry(x, lim)
        out.append((round(d.risk, 9), tuple((h.rule, h.effect) for h in d.hits)))
    return tuple(out)


def correlation_reading(settings: Settings) -> float:
    """BTC and ETH move alike for 30 hours: the correlation a RiskBook reads (NaN when its window needs more)."""
    book = RiskBook(_limits(settings))
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, 31)
    for h, (a, b) in enumerate(zip(100 * np.exp(np.cumsum(r)), 2000 * np.exp(np.cumsum(r)), strict=True)):
        book.observe(BTC, (1000 + h) * 3_600_000, float(a))
        book.observe(ETH, (1000 + h) * 3_600_000, float(b))
    book.opened(ETH, 1, 0.02)
    return book.correlations(BTC, 1).get(ETH, math.nan)


class _Line:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def get(self, size: int) -> list[float]:
        return list(self.values[-size:])


def volatility_reading(settings: Settings) -> float:
    atr = np.linspace(1.0, 2.0, 200)
    return vol_rank(_Line(atr), _Line(np.full(200, 100.0)), _limits(settings).volatility_window)


def backtest_trades(settings: Settings) -> tuple:
    """A long that rises through its targets, trails, and falls back; then one that is stopped out."""
    up = list(np.full(60, 100.0)) + list(np.linspace(100, 104, 40)) + list(np.linspace(104, 101, 40))
    down = list(np.full(40, 101.0)) + list(np.linspace(101, 98, 30)) + list(np.full(30, 98.0))
    closes = np.array(up + down)
    ranges = 0.002 + 0.002 * np.abs(np.sin(np.arange(len(closes)) / 7))  # ATR varies, so its period matters
    params = declared_risk_params(settings, Scripted.param_values())
    result = run({BTC: frame(closes, {59: LONG, 179: LONG}, ranges=ranges)}, **params)
    return tuple((t.qty, round(t.exit_price, 6), t.exit_reason, t.fills) for t in result.trades)


def latency_tiers(settings: Settings) -> tuple:
    client = client_from_settings(settings)
    mon = client.latency
    return tuple(mon._tier_for(ms).name for ms in (50, 150, 600, 1500)), mon.hold_s


def read_in(path: str, *needles: str) -> bool:
    text = (REPO / path).read_text(encoding="utf-8")
    return all(re.search(n, text) for n in needles)


def market_side_reader(key: str) -> bool:
    """The key's own name read as an attribute by a module of the market side (liquidity, maintenance)."""
    leaf = key.split(".")[-1]
    for path in (REPO / "trader").rglob("*.py"):
        if path.name == "schema.py":
            continue
        if re.search(rf"\.{re.escape(leaf)}\b", path.read_text(encoding="utf-8")):
            return True
    return False


# -- probes: key path -> (extreme value, observer) ---------------------------------------------------------------
EXTREME: dict[str, tuple[Any, Any]] = {
    "risk_per_trade": (0.1, decisions),
    "max_coin_risk": (0.01, decisions),
    "max_total_risk": (0.02, decisions),
    "atr_period": (100, backtest_trades),
    "atr_multiplier": (0.1, backtest_trades),
    "stop_leverage_factor": (0.05, backtest_trades),
    "take_profit[].move": (None, backtest_trades),  # set below: far targets
    "take_profit[].close": (None, backtest_trades),
    "trailing_atr_multiplier": (50.0, backtest_trades),
    "loss_streak": (1, decisions),
    "max_drawdown": (0.9, decisions),
    "correlation_max": (0.99, decisions),
    "volatility_percentile": (0.99, decisions),
    "volatility_window": (100_000, volatility_reading),
    "volatility_size": (1.0, decisions),
    "streak_size": (1.0, decisions),
    "drawdown_budget": (1.0, decisions),
    "correlation_hours": (24 * 90, correlation_reading),
    "budget.trades_per_day": (100.0, decisions),
    "budget.floor": (1.0, decisions),
    "account_tiers[].above": (None, decisions),
    "account_tiers[].risk": (1.0, decisions),
    "regime_budget.ranging": (0.01, decisions),
    "regime_budget.trending": (0.01, decisions),
    "regime_budget.breakout": (1.0, decisions),
    "regime_budget.volatile": (1.0, decisions),
    "regime_budget.unknown": (0.01, decisions),
    "latency.safe_ms": (200, latency_tiers),
    "latency.no_entries_ms": (900, latency_tiers),
    "latency.emergency_ms": (5000, latency_tiers),
    "latency.hold_seconds": (600, latency_tiers),
}


def _special(path: str) -> Settings:
    risk = RiskConfig().model_dump(mode="json")
    if path == "take_profit[].move":
        risk["take_profit"] = [{"move": 0.3, "close": 0.3}, {"move": 0.4, "close": 0.3}, {"move": 0.5, "close": 0.4}]
    elif path == "take_profit[].close":
        risk["take_profit"] = [{"move": 0.008, "close": 0.8}, {"move": 0.02, "close": 0.1},
                               {"move": 0.05, "close": 0.1}]
    elif path == "account_tiers[].above":
        risk["account_tiers"] = [{"above": 500_000, "risk": 0.75}, {"above": 600_000, "risk": 0.5},
                                 {"above": 700_000, "risk": 0.3}]
    return Settings(risk=risk)


# Read where the running system is composed, or by the market side's own modules (tested there).
READ_ELSEWHERE: dict[str, Any] = {
    "liquidation_warning": lambda: read_in("bot/main_job.py", r"settings\.risk\.liquidation_warning"),
    "latency.emergency_action": lambda: read_in("bot/main_job.py", r"settings\.risk\.latency\.emergency_action"),
}


def test_the_probe_list_covers_every_key() -> None:
    paths = key_paths(RiskConfig)
    assert "take_profit[].move" in paths and "budget.floor" in paths and "latency.safe_ms" in paths
    market = [p for p in paths if p.startswith(("liquidity.", "maintenance."))]
    unprobed = [p for p in paths if p not in EXTREME and p not in READ_ELSEWHERE and p not in market]
    assert unprobed == [], f"risk keys without a probe (is anything reading them?): {unprobed}"


@pytest.mark.parametrize("path", sorted(EXTREME))
def test_each_key_changes_a_decision(path: str) -> None:
    value, observe = EXTREME[path]
    changed = _special(path) if value is None else with_key(path, value)
    base, other = observe(Settings()), observe(changed)
    same = base == other or (isinstance(base, float) and math.isnan(base) and math.isnan(other))
    assert not same, f"risk.{path} set to an extreme changed nothing: {base!r}"


@pytest.mark.parametrize("path", sorted(READ_ELSEWHERE))
def test_keys_read_by_the_composition_root(path: str) -> None:
    assert READ_ELSEWHERE[path](), f"risk.{path} is not read where the running system is built"


@pytest.mark.parametrize("path", [p for p in key_paths(RiskConfig) if p.startswith(("liquidity.", "maintenance."))])
def test_market_side_keys_have_a_reader(path: str) -> None:
    assert market_side_reader(path), f"risk.{path}: nothing in trader/ reads .{path.split('.')[-1]}"
