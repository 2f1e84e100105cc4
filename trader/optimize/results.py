"""What a hyperopt run returns: per walk-forward fold the best parameters with their in-sample (train) and
out-of-sample (test) metrics, an aggregate out-of-sample score, a printable table and a JSON export."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader.optimize.walkforward import Fold


def margin_return_to_price_move(margin_return: float, leverage: int) -> float:
    """A take-profit target as return on margin (the specification's 5/10/20 %) → price move from entry.

    At ``leverage`` x a price move of m changes the position's value by m × notional = m × leverage × margin, so
    +10 % on margin at 25x is a 0.4 % move. The strategy's ``tp_moves`` are price moves.
    """
    return margin_return / leverage


def price_move_to_margin_return(move: float, leverage: int) -> float:
    return move * leverage


@dataclass
class FoldResult:
    fold: Fold
    study_name: str
    trials: int  # finished trials in the fold's study, this run's and earlier runs' (or other machines')
    new_trials: int  # finished by this run
    best_params: dict[str, Any]  # by space dimension name, e.g. {"rsi_low": 25.0, "tp_moves[0]": 0.0075}
    strategy_params: dict[str, Any]  # the same as strategy_params overrides, e.g. {"tp_moves": (0.0075, 0.02, 0.05)}
    is_score: float
    is_metrics: dict[str, Any]
    oos_score: float
    oos_metrics: dict[str, Any]
    engine: str = "backtrader"  # what the trials ran on
    # With the screening engine: the best parameters re-run on Backtrader (whose in-sample score and metrics are
    # the ones above) and whether the two engines agreed trade for trade and on the score.
    recheck: dict[str, Any] | None = None

    def to_dict(self, leverage: int) -> dict[str, Any]:
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.strategy_params.items()}
        out: dict[str, Any] = {
            "fold": self.fold.to_dict(), "study": self.study_name, "trials": self.trials,
            "new_trials": self.new_trials, "best_params": self.best_params, "strategy_params": params,
            "in_sample": {"score": self.is_score, "metrics": self.is_metrics},
            "out_of_sample": {"score": self.oos_score, "metrics": self.oos_metrics},
            "engine": self.engine,
        }
        if self.recheck is not None:
            out["backtrader_recheck"] = self.recheck
        if "tp_moves" in params:
            out["tp_return_on_margin"] = [price_move_to_margin_return(m, leverage) for m in params["tp_moves"]]
        return out


@dataclass
class HyperoptResult:
    study_name: str
    strategy: str
    pairs: list[str]
    timeframe: str
    leverage: int
    sampler: str
    loss: str
    loss_description: str
    spaces: list[str]
    dimensions: list[str]
    epochs: int
    jobs: int
    storage: str  # password hidden
    started_utc: str
    elapsed_s: float = 0.0
    folds: list[FoldResult] = field(default_factory=list)
    cancelled: bool = False
    engine: str = "backtrader"  # the trials' engine: "screening" or "backtrader"
    engine_note: str = ""  # why Backtrader when the screening engine was not used

    def engine_line(self) -> str:
        """Which engine ran the trials, and for the screening engine whether Backtrader agreed on the best
        parameters of every fold."""
        if self.engine != "screening":
            return f"engine: Backtrader ({self.engine_note})" if self.engine_note else "engine: Backtrader"
        checks = [f.recheck for f in self.folds if f.recheck is not None]
        differ = [f.fold.index for f in self.folds if f.recheck is not None
                  and not (f.recheck.get("trades_equal") and f.recheck.get("scores_equal"))]
        if not checks:
            return "engine: screening (numba); best parameters not re-run yet"
        if differ:
            return (f"engine: screening (numba); best parameters re-run on Backtrader: DIFFERENT in fold(s) "
                    f"{', '.join(map(str, differ))} — the scores shown are Backtrader's")
        return ("engine: screening (numba); best parameters re-run on Backtrader: same trades and score in every "
                "fold")

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters to apply: the last fold's, trained on the most recent data. Empty if no fold finished."""
        return dict(self.folds[-1].strategy_params) if self.folds else {}

    @property
    def oos_score(self) -> float:
        """Mean out-of-sample score over the folds: the honest estimate of the chosen loss."""
        return sum(f.oos_score for f in self.folds) / len(self.folds) if self.folds else math.nan

    @property
    def is_score(self) -> float:
        return sum(f.is_score for f in self.folds) / len(self.folds) if self.folds else math.nan

    @property
    def oos_total_return(self) -> float:
        """Test windows chained: each compounds on the previous one's result."""
        growth = 1.0
        for f in self.folds:
            growth *= 1.0 + (f.oos_metrics.get("total_return") or 0.0)
        return growth - 1.0 if self.folds else math.nan

    @property
    def oos_worst_drawdown(self) -> float:
        dds = [f.oos_metrics.get("max_drawdown") for f in self.folds]
        return min((d for d in dds if d is not None), default=math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name, "strategy": self.strategy, "pairs": self.pairs, "timeframe": self.timeframe,
            "leverage": self.leverage, "sampler": self.sampler,
            "loss": {"name": self.loss, "description": self.loss_description},
            "spaces": self.spaces, "dimensions": self.dimensions, "epochs_per_fold": self.epochs,
            "jobs": self.jobs, "storage": self.storage, "started_utc": self.started_utc,
            "engine": self.engine, "engine_note": self.engine_note,
            "elapsed_s": round(self.elapsed_s, 3), "cancelled": self.cancelled,
            "aggregate": {"oos_score": _num(self.oos_score), "is_score": _num(self.is_score),
                          "oos_total_return": _num(self.oos_total_return),
                          "oos_worst_drawdown": _num(self.oos_worst_drawdown)},
            "best_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.best_params.items()},
            "folds": [f.to_dict(self.leverage) for f in self.folds],
        }

    def write_json(self, root: Path) -> Path:
        """``<root>/<study>/<UTC timestamp>.json``; returns the file written."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        out = Path(root) / safe_name(self.study_name) / f"{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        return out

    def table(self) -> str:
        head = (f"{'fold':>4}  {'train (UTC)':<33}  {'test until':<16}  {'trials':>6}  {'IS score':>9}  "
                f"{'OOS score':>9}  {'OOS return':>10}  {'OOS maxDD':>9}  {'OOS trades':>10}")
        lines = [f"study {self.study_name}: {self.strategy} on {', '.join(self.pairs)} {self.timeframe}, "
                 f"{self.sampler}, loss {self.loss} ({self.loss_description})", self.engine_line(), head,
                 "-" * len(head)]
        for f in self.folds:
            m = f.oos_metrics
            lines.append(
                f"{f.fold.index:>4}  {_day(f.fold.train_start_ms)} → {_day(f.fold.train_end_ms):<16}  "
                f"{_day(f.fold.test_end_ms):<16}  {f.trials:>6}  {f.is_score:>9.3f}  {f.oos_score:>9.3f}  "
                f"{_pct(m.get('total_return')):>10}  {_pct(m.get('max_drawdown')):>9}  {m.get('trades', 0):>10}")
        lines.append(f"aggregate out of sample: score {self.oos_score:.3f} (in sample {self.is_score:.3f}), "
                     f"chained return {_pct(self.oos_total_return)}, worst drawdown {_pct(self.oos_worst_drawdown)}")
        if self.folds:
            lines.append("best parameters (last fold, most recent training window):")
            for k, v in self.best_params.items():
                lines.append(f"  {k} = {v}")
            tp = self.best_params.get("tp_moves")
            if tp:
                rom = ", ".join(f"{price_move_to_margin_return(m, self.leverage) * 100:.1f} %" for m in tp)
                lines.append(f"  (take-profit tiers as return on margin at {self.leverage}x: {rom})")
        if self.cancelled:
            lines.append("cancelled: folds not finished are not reported")
        return "\n".join(lines)


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name) or "study"


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v * 100:.2f} %"
