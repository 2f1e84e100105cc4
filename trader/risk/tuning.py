"""Re-tuning the risk parameters over recent trades by Bayesian optimisation (optuna TPE).

A closed trade is kept as its R multiple: net result / USDT at risk at its first stop. Replaying the trades in time
order through a RiskBook with candidate limits sizes each one by the rules (risk per trade, total budget, loss
streak, drawdown) and gives an equity path; the score is its return over its maximum drawdown. The correlation,
volatility and regime rules read market data a trade list does not carry: they are not re-tuned here.

Guards against fitting noise: the search only lowers risk (``risk_per_trade`` and ``max_total_risk`` never above the
values in force, which are the user's ceiling); the trades are split in time, the search sees the first two thirds,
and a proposal is made only when it also beats the values in force on the last third it never saw. A proposal is
only a proposal: it is applied through ``TradingService.apply_strategy_params`` (an admin confirms; audited).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trader.risk.book import RiskBook
from trader.risk.limits import RiskLimits

MIN_TRADES = 30
TUNED = ("risk_per_trade", "max_total_risk", "loss_streak", "streak_size", "max_drawdown", "drawdown_budget")


@dataclass(frozen=True)
class TradeOutcome:
    open_ms: int
    close_ms: int
    pair: str
    side: int
    r: float  # net result / USDT at risk at the first stop


@dataclass(frozen=True)
class Replay:
    final: float
    max_drawdown: float
    taken: int

    @property
    def score(self) -> float:
        """Return over maximum drawdown (the drawdown floored at 1 % so a lucky short run does not explode)."""
        return (self.final - 1.0) / max(self.max_drawdown, 0.01)


@dataclass(frozen=True)
class Proposal:
    trades: int
    current: dict[str, Any]
    proposed: dict[str, Any]  # empty when nothing beat the values in force out of sample
    train_before: float
    train_after: float
    test_before: float
    test_after: float


def replay(outcomes: Sequence[TradeOutcome], limits: RiskLimits) -> Replay:
    """The trades sized by the rules from a wallet of 1: closes before opens at the same millisecond."""
    events = sorted([(o.open_ms, 1, i) for i, o in enumerate(outcomes)] +
                    [(o.close_ms, 0, i) for i, o in enumerate(outcomes)])
    book = RiskBook(limits)
    wallet = peak = 1.0
    worst = 0.0
    at_risk: dict[int, float] = {}
    taken = 0
    for ms, kind, i in events:
        o = outcomes[i]
        book.now_ms = max(book.now_ms, ms)
        if book.first_ms is None:
            book.first_ms = ms
        if kind == 1:
            if o.pair in book.open:
                continue  # one position per pair, as the strategies hold them
            d = book.decide(o.pair, o.side, limits.risk_per_trade, wallet)
            if d.risk > 0:
                book.opened(o.pair, o.side, d.risk, ms)
                at_risk[i] = d.risk * wallet
                taken += 1
        elif i in at_risk:
            pnl = o.r * at_risk.pop(i)
            wallet = max(wallet + pnl, 1e-9)
            book.closed(o.pair, pnl, wallet)
            peak = max(peak, wallet)
            worst = max(worst, 1.0 - wallet / peak)
    return Replay(wallet, worst, taken)


def _candidate(trial: Any, ceiling: RiskLimits) -> RiskLimits:
    return replace(
        ceiling,
        risk_per_trade=trial.suggest_float("risk_per_trade", ceiling.risk_per_trade / 4, ceiling.risk_per_trade),
        max_total_risk=trial.suggest_float("max_total_risk", ceiling.max_total_risk / 4, ceiling.max_total_risk),
        loss_streak=trial.suggest_int("loss_streak", 2, 8),
        streak_size=trial.suggest_float("streak_size", 0.25, 1.0),
        max_drawdown=trial.suggest_float("max_drawdown", 0.05, 0.4),
        drawdown_budget=trial.suggest_float("drawdown_budget", 0.25, 1.0),
    )


def tune(outcomes: Sequence[TradeOutcome], current: RiskLimits, trials: int = 200, seed: int = 0) -> Proposal:
    """TPE over the first two thirds of ``outcomes`` (time order), judged on the last third."""
    import optuna

    if len(outcomes) < MIN_TRADES:
        raise ValueError(f"{len(outcomes)} closed trades with a known stop; at least {MIN_TRADES} are needed")
    ordered = sorted(outcomes, key=lambda o: o.open_ms)
    cut = len(ordered) * 2 // 3
    train, test = ordered[:cut], ordered[cut:]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: getattr(current, k) for k in TUNED})  # the values in force are a candidate too
    study.optimize(lambda tr: replay(train, _candidate(tr, current)).score, n_trials=trials)
    best = replace(current, **study.best_params)
    values = {k: getattr(current, k) for k in TUNED}
    before_test, after_test = replay(test, current).score, replay(test, best).score
    better = after_test > before_test and any(
        not math.isclose(getattr(best, k), getattr(current, k)) for k in TUNED)
    proposed = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in study.best_params.items()} if better \
        else {}
    return Proposal(len(ordered), values, proposed, replay(train, current).score, study.best_value, before_test,
                    after_test)


def outcomes_from_ledger(sessions: Any, since: dt.datetime, dry_run: bool) -> list[TradeOutcome]:
    """Closed live (or dry-run) trades since ``since`` as R multiples; a trade whose first stop is unknown (or at
    its entry) is left out, since its risk cannot be known."""
    from sqlalchemy import select

    from trader.persistence.models import Trade

    out = []
    with sessions() as s:
        rows = s.scalars(select(Trade).where(Trade.status == "closed", Trade.backtest_run_id.is_(None),
                                             Trade.dry_run.is_(dry_run), Trade.open_date >= since))
        for t in rows:
            stops = [o for o in t.orders if o.purpose == "stop" and o.stop_price is not None]
            first = stops[0].stop_price if stops else t.stop_price
            if first is None or t.close_date is None:
                continue
            risk = abs(t.open_rate - first) * t.amount
            if risk <= Decimal(0):
                continue
            net = t.realized_pnl - t.fees + t.funding
            out.append(TradeOutcome(int(t.open_date.timestamp() * 1000), int(t.close_date.timestamp() * 1000),
                                    t.pair, 1 if t.side == "long" else -1, float(net / risk)))
    return out
