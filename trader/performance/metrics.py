"""Performance metrics of an equity curve and its trades.

Return-based ratios use UTC-daily returns of the equity (last value of each day, anchored at the initial wallet)
and 365 periods a year: crypto trades every day. Definitions match empyrical-reloaded's (the tests compare them
on the same series): Sharpe with sample std (ddof=1), Sortino against zero with downside deviation
sqrt(mean(min(r, 0)²)), Calmar = annual return / |max drawdown|, Omega at threshold 0, historical VaR/CVaR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

DAY_MS = 86_400_000
PERIODS_PER_YEAR = 365


class TradeLike(Protocol):
    open_ms: int
    close_ms: int
    liquidated: bool

    @property
    def net_pnl(self) -> float: ...

    @property
    def return_on_equity(self) -> float: ...


def period_returns(equity_ms: np.ndarray, equity: np.ndarray, initial: float, period_ms: int = DAY_MS,
                   ) -> np.ndarray:
    """Returns between the closing equity of consecutive periods (UTC-aligned), the first from ``initial``."""
    if not len(equity):
        return np.empty(0)
    bucket = np.asarray(equity_ms, dtype="int64") // period_ms
    last = np.r_[np.nonzero(np.diff(bucket))[0], len(bucket) - 1]
    closes = np.r_[initial, np.asarray(equity, dtype="float64")[last]]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = closes[1:] / closes[:-1] - 1.0
    r[~np.isfinite(r)] = -1.0  # a wiped-out account stays wiped out
    return r


def sharpe(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    if len(r) < 2:
        return math.nan
    sd = np.std(r, ddof=1)
    return math.nan if sd == 0 else float(np.mean(r) / sd * math.sqrt(periods))


def downside_deviation(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    if not len(r):
        return math.nan
    down = np.minimum(r, 0.0)
    return float(math.sqrt(np.mean(down**2)) * math.sqrt(periods))


def sortino(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    if len(r) < 2:
        return math.nan
    dd = downside_deviation(r, periods)
    if dd == 0:
        return math.inf if np.mean(r) > 0 else math.nan
    return float(np.mean(r) * periods / dd)


def annual_return(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    if not len(r):
        return math.nan
    growth = float(np.prod(1.0 + r))
    if growth <= 0:
        return -1.0
    return growth ** (periods / len(r)) - 1.0


def annual_volatility(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    return float(np.std(r, ddof=1) * math.sqrt(periods)) if len(r) > 1 else math.nan


def max_drawdown_of_returns(r: np.ndarray) -> float:
    """Largest peak-to-trough fall of the compounded returns (negative), the initial value counting as a peak."""
    if not len(r):
        return math.nan
    curve = np.r_[1.0, np.cumprod(1.0 + r)]
    peak = np.maximum.accumulate(curve)
    return float(np.min(curve / peak - 1.0))


def calmar(r: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    mdd = max_drawdown_of_returns(r)
    if not mdd or math.isnan(mdd):
        return math.nan
    return annual_return(r, periods) / abs(mdd)


def omega(r: np.ndarray, threshold: float = 0.0) -> float:
    ex = r - threshold
    gain = ex[ex > 0].sum()
    loss = -ex[ex < 0].sum()
    return float(gain / loss) if loss > 0 else math.nan


def value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    """Historical VaR: the (1 − level) quantile of returns (a negative number is a loss)."""
    return float(np.percentile(r, 100 * (1 - level))) if len(r) else math.nan


def conditional_value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    """Mean of the worst ⌊(1 − level)·(n − 1)⌋ + 1 returns, as empyrical computes it."""
    r = np.asarray(r, dtype=float)
    r = r[~np.isnan(r)]
    if not len(r):
        return math.nan
    k = int((len(r) - 1) * (1 - level))
    return float(np.mean(np.partition(r, k)[: k + 1]))


@dataclass(frozen=True)
class Drawdown:
    depth: float  # negative fraction
    peak_ms: int
    trough_ms: int
    recovery_ms: int | None  # first time equity regained the peak; None if it never did
    end_ms: int = 0  # last timestamp of the series

    @property
    def duration_ms(self) -> int:
        """Time under water: peak to recovery, or peak to the end of the series when it never recovered."""
        return (self.recovery_ms if self.recovery_ms is not None else max(self.end_ms, self.trough_ms)) - self.peak_ms

    @property
    def recovery_time_ms(self) -> int | None:
        return None if self.recovery_ms is None else self.recovery_ms - self.trough_ms


def max_drawdown(equity_ms: np.ndarray, equity: np.ndarray, initial: float) -> Drawdown:
    """The deepest drawdown of the bar-level equity curve, with when it started, bottomed and recovered."""
    if not len(equity):
        return Drawdown(0.0, 0, 0, None)
    eq = np.r_[initial, np.asarray(equity, dtype=float)]
    ts = np.r_[int(equity_ms[0]), np.asarray(equity_ms, dtype="int64")]
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / peak - 1.0, 0.0)
    t = int(np.argmin(dd))
    depth = float(dd[t])
    if depth >= 0:
        return Drawdown(0.0, int(ts[0]), int(ts[0]), int(ts[0]), int(ts[-1]))
    p = int(np.nonzero(eq[: t + 1] == peak[t])[0][-1])
    after = np.nonzero(eq[t:] >= peak[t])[0]
    rec = int(ts[t + after[0]]) if len(after) else None
    return Drawdown(depth, int(ts[p]), int(ts[t]), rec, int(ts[-1]))


@dataclass(frozen=True)
class Metrics:
    total_return: float
    annual_return: float
    max_drawdown: float
    max_drawdown_duration_days: float
    max_drawdown_recovery_days: float | None
    sharpe: float
    sortino: float
    calmar: float
    omega: float
    annual_volatility: float
    var_95: float
    cvar_95: float
    var_99: float
    cvar_99: float
    trades: int
    win_rate: float
    profit_factor: float
    payoff_ratio: float
    expectancy: float  # mean net P&L per trade, USDT
    expectancy_pct: float  # mean net return on equity per trade
    exposure: float  # share of bars with a position open
    trades_per_day: float
    avg_holding_minutes: float
    fees_paid: float
    funding_paid: float  # net; negative = received
    liquidations: int
    days: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compute_metrics(equity_ms: np.ndarray, equity: np.ndarray, trades: Sequence[TradeLike], initial: float,
                    bar_ms: int, fees: float, funding: float, liquidations: int, exposure_bars: int) -> Metrics:
    r = period_returns(equity_ms, equity, initial)
    final = float(equity[-1]) if len(equity) else initial
    days = (len(equity) * bar_ms) / DAY_MS
    dd = max_drawdown(equity_ms, equity, initial)
    pnl = np.array([t.net_pnl for t in trades], dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    hold = np.array([(t.close_ms - t.open_ms) for t in trades], dtype=float) / 60_000
    total = final / initial - 1.0
    years = days / PERIODS_PER_YEAR
    ann = (max(final, 0.0) / initial) ** (1 / years) - 1.0 if years > 0 and final > 0 else (-1.0 if years else 0.0)
    return Metrics(
        total_return=total,
        annual_return=ann,
        max_drawdown=dd.depth,
        max_drawdown_duration_days=dd.duration_ms / DAY_MS,
        max_drawdown_recovery_days=None if dd.recovery_time_ms is None else dd.recovery_time_ms / DAY_MS,
        sharpe=sharpe(r),
        sortino=sortino(r),
        calmar=ann / abs(dd.depth) if dd.depth else math.nan,
        omega=omega(r),
        annual_volatility=annual_volatility(r),
        var_95=value_at_risk(r, 0.95),
        cvar_95=conditional_value_at_risk(r, 0.95),
        var_99=value_at_risk(r, 0.99),
        cvar_99=conditional_value_at_risk(r, 0.99),
        trades=len(pnl),
        win_rate=len(wins) / len(pnl) if len(pnl) else math.nan,
        profit_factor=float(wins.sum() / -losses.sum()) if len(losses) else math.nan,
        payoff_ratio=float(wins.mean() / -losses.mean()) if len(wins) and len(losses) else math.nan,
        expectancy=float(pnl.mean()) if len(pnl) else math.nan,
        expectancy_pct=float(np.mean([t.return_on_equity for t in trades])) if len(pnl) else math.nan,
        exposure=exposure_bars / len(equity) if len(equity) else 0.0,
        trades_per_day=len(pnl) / days if days else math.nan,
        avg_holding_minutes=float(hold.mean()) if len(hold) else math.nan,
        fees_paid=fees,
        funding_paid=funding,
        liquidations=liquidations,
        days=days,
    )
