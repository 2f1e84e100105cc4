"""Walk-forward, out-of-sample evaluation of the strategy layer against buy-and-hold and the reference strategy.

    python -m trader.evaluation.strategies [--data ../shared/data/futures] [--out docs/evaluation.md] [--jobs 2]

What it does (all numbers after the runner's fees, slippage and funding, at the product's risk rules: 25x, 2 % risk
per trade, 10 % total):
1. Periods: the longest stretches of 5m futures candles in the shared data for the pairs the backtest has exchange
   rules for (BTC, ETH, SOL): 2023-01-01 → 2024-05-14 (BTC, ETH) and 2024-12-31 → 2026-02-19 (BTC, ETH, SOL).
2. Every strategy has three candidate settings fixed in advance from its hyperopt space (``CANDIDATES``; never tuned
   on these results). Each candidate runs once over the whole period (one shared wallet for the pairs).
3. Walk-forward: for each calendar month from the third on, the candidate with the best Sharpe over the two
   preceding months (known at the month's start) is chosen, and the month's result is that candidate's. The chained
   months are the out-of-sample result. The defaults' result over the same months is shown too.
4. Benchmarks over the same months: buy-and-hold (equal weight, 1x, funding and a taker fee each way) and the
   reference RSI+Bollinger strategy (defaults; it has no candidates).
5. Per regime: each out-of-sample trade is labelled with the regime the master saw at its decision bar.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing as mp
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.data.store import load_candles, load_funding
from trader.strategy.base import Candles

DAY = 86_400_000
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "futures"
DEFAULT_OUT = ROOT / "docs" / "evaluation.md"

PERIODS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("A", ("BTC/USDT:USDT", "ETH/USDT:USDT"), "2023-01-01", "2024-05-14"),
    ("B", ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"), "2024-12-31", "2026-02-19"),
]
CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "oscillation": [{}, {"osc_rsi_low": 20.0, "osc_rsi_high": 80.0}, {"osc_bb_dev": 2.5, "osc_rsi_exit": 60.0}],
    "breakout": [{}, {"brk_lookback": 40}, {"brk_volume_mult": 2.5, "brk_trail_atr": 3.0}],
    "trend": [{}, {"trd_fast": 20, "trd_mid": 40, "trd_slow": 80}, {"trd_touch": 0.004, "trd_trail_atr": 2.5}],
    "master": [{}, {"fusion_threshold": 0.4}, {"volatile_route": "breakout", "regime_confirm": 3}],
    "rsi_bollinger": [{}],
}
TRAIN_MONTHS = 2
REGIMES = ("ranging", "trending", "volatile", "breakout", "unknown")


def _ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


@dataclass
class Run:
    period: str
    strategy: str
    candidate: int
    params: dict[str, Any]
    day_ms: np.ndarray  # daily closes of the equity curve
    equity: np.ndarray
    trades: list[tuple[str, int, float, float]]  # pair, open_ms, net_pnl, equity_at_open
    seconds: float


def _job(args: tuple[str, tuple[str, ...], int, int, str, int, dict[str, Any], str]) -> Run:
    period, pairs, start, end, strategy, k, params, data = args
    t0 = time.perf_counter()
    res = run_backtest(BacktestRequest(strategy=strategy, pairs=pairs, timeframe="5m", start_ms=start, end_ms=end,
                                       data_dir=Path(data), strategy_params=params))
    eq = pd.Series(res.equity, index=res.equity_ms)
    day = eq.groupby(eq.index // DAY * DAY).last()
    trades = [(t.pair, int(t.open_ms), float(t.net_pnl), float(t.equity_at_open or res.initial_wallet))
              for t in res.trades]
    return Run(period, strategy, k, params, day.index.to_numpy(), day.to_numpy(), trades, time.perf_counter() - t0)


def _sharpe(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    if len(r) < 2 or np.std(r) == 0:
        return math.nan
    return float(np.mean(r) / np.std(r, ddof=1) * math.sqrt(365))


def _months(start: int, end: int) -> list[tuple[int, int]]:
    out = []
    d = dt.datetime.fromtimestamp(start / 1000, dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while int(d.timestamp() * 1000) < end:
        nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        out.append((int(d.timestamp() * 1000), min(int(nxt.timestamp() * 1000), end)))
        d = nxt
    return out


def _daily_returns(run: Run, a: int, b: int) -> np.ndarray:
    """Daily equity returns of the days closing in [a, b) (the previous day's close as the base)."""
    s = pd.Series(run.equity, index=run.day_ms)
    prev = s.shift(1)
    r = (s / prev - 1.0)[(s.index >= a) & (s.index < b)]
    return r.to_numpy()


@dataclass
class Chain:
    label: str
    returns: np.ndarray
    trades: list[tuple[str, int, float, float]]
    picks: list[int]

    def row(self) -> dict[str, Any]:
        r = np.nan_to_num(self.returns)
        eq = np.cumprod(1 + r)
        dd = float(np.min(eq / np.maximum.accumulate(eq) - 1)) if len(eq) else 0.0
        wins = sum(1 for t in self.trades if t[2] > 0)
        return {"return": float(eq[-1] - 1) if len(eq) else 0.0, "max_dd": dd, "sharpe": _sharpe(r),
                "trades": len(self.trades), "win_rate": wins / len(self.trades) if self.trades else math.nan}


def walk_forward(runs: list[Run], months: list[tuple[int, int]], fixed: int | None = None) -> Chain:
    rets: list[np.ndarray] = []
    trades: list[tuple[str, int, float, float]] = []
    picks: list[int] = []
    for i in range(TRAIN_MONTHS, len(months)):
        a, b = months[i]
        if fixed is not None:
            k = fixed
        else:
            ta = months[i - TRAIN_MONTHS][0]
            scores = [_sharpe(_daily_returns(r, ta, a)) for r in runs]
            finite = [(s, j) for j, s in enumerate(scores) if math.isfinite(s)]
            k = max(finite)[1] if finite else 0
        picks.append(k)
        rets.append(_daily_returns(runs[k], a, b))
        trades += [t for t in runs[k].trades if a <= t[1] < b]
    return Chain("", np.concatenate(rets) if rets else np.empty(0), trades, picks)


def buy_and_hold(data: Path, pairs: tuple[str, ...], a: int, b: int, fee: float = 0.0005) -> np.ndarray:
    """Daily returns of an equal-weight 1x long of ``pairs`` from ``a`` to ``b``, funding paid, a fee each way."""
    values = []
    for pair in pairs:
        c = load_candles(data, pair, "5m", "futures", a, b)
        px = pd.Series(c["close"].to_numpy(), index=c["timestamp"].to_numpy())
        f = load_funding(data, pair, a, b)
        paid = pd.Series(0.0, index=px.index)
        if len(f):
            at = np.searchsorted(px.index.to_numpy(), f["timestamp"].to_numpy())
            ok = at < len(px)
            rates = f["funding_rate"].to_numpy()[ok]
            paid_at = px.index.to_numpy()[at[ok]]
            paid = paid.add(pd.Series(rates * px.to_numpy()[at[ok]], index=paid_at).groupby(level=0).sum(),
                            fill_value=0.0)
        v = (px - paid.cumsum()) / px.iloc[0] * (1 - fee)
        v.iloc[-1] *= (1 - fee)
        values.append(v.groupby(v.index // DAY * DAY).last())
    port = pd.concat(values, axis=1).ffill().mean(axis=1)
    base = pd.concat([pd.Series([1.0 - fee], index=[port.index[0] - DAY]), port])
    return (base / base.shift(1) - 1).iloc[1:].to_numpy()


def regime_labels(data: Path, pairs: tuple[str, ...], start: int, end: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per pair: (5m bar open times, the master's regime name at each bar)."""
    from trader.strategy.master import REGIME_NAMES, MasterStrategy

    out = {}
    for pair in pairs:
        c = load_candles(data, pair, "5m", "futures", start, end)
        cols = MasterStrategy.compute_indicators(
            Candles(*(c[k].to_numpy(dtype="int64" if k == "timestamp" else "float64")
                      for k in ("timestamp", "open", "high", "low", "close", "volume"))), MasterStrategy.param_values())
        names = np.array([REGIME_NAMES.get(float(x), "unknown") for x in cols["regime"]], dtype=object)
        out[pair] = (c["timestamp"].to_numpy(dtype="int64"), names)
    return out


def regime_of(labels: Mapping[str, tuple[np.ndarray, np.ndarray]], pair: str, open_ms: int) -> str:
    ts, names = labels[pair]
    i = int(np.searchsorted(ts, open_ms)) - 1  # the decision bar: the one before the entry's fill
    return str(names[i]) if 0 <= i < len(names) else "unknown"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x * 100:+.1f} %"


def _num(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def evaluate(data: Path, jobs: int = 2) -> str:
    t0 = time.perf_counter()
    tasks = []
    for name, pairs, a, b in PERIODS:
        for strategy, cands in CANDIDATES.items():
            for k, params in enumerate(cands):
                tasks.append((name, pairs, _ms(a), _ms(b) + DAY, strategy, k, params, str(data)))
    if jobs > 1:
        with mp.get_context("fork").Pool(jobs) as pool:
            runs = pool.map(_job, tasks, chunksize=1)
    else:
        runs = [_job(t) for t in tasks]
    cpu = sum(r.seconds for r in runs)
    lines = ["# Strategy evaluation (walk-forward, out of sample)", "",
             "Regenerate with `python -m trader.evaluation.strategies` (writes this file; "
             f"{len(tasks)} backtests, {cpu / 60:.1f} CPU-minutes, {(time.perf_counter() - t0) / 60:.1f} minutes "
             f"wall on {jobs} processes when last run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC).", "",
             "Method (trader/evaluation/strategies.py): 5m futures candles from ../shared/data, the runner's fees, "
             "slippage, mark prices and real funding; 25x, 10,000 USDT, the risk rules of trader/risk at the "
             "configuration's defaults (2 % risk per trade, 10 % total, lowered with trading frequency and drawdown, "
             "loss streak, volatility, correlation). Each strategy "
             "has three candidate settings fixed in advance from its hyperopt space; each runs over the whole period; "
             f"every month from the {TRAIN_MONTHS + 1}rd on takes the candidate with the best Sharpe over the "
             f"{TRAIN_MONTHS} months before it (walk-forward selection, out of sample). *defaults* = the default "
             "settings over the same months, no selection. Buy-and-hold: equal weight, 1x, funding paid, a taker fee "
             "each way. Sharpe: daily returns, annualised with √365. Losing results are shown as they are.", ""]
    for name, pairs, a, b in PERIODS:
        months = _months(_ms(a), _ms(b) + DAY)
        oos_a, oos_b = months[TRAIN_MONTHS][0], months[-1][1]
        labels = regime_labels(data, pairs, _ms(a), _ms(b) + DAY)
        lines += [f"## Period {name}: {', '.join(p.split('/')[0] for p in pairs)}, data {a} → {b}; out of sample "
                  f"{dt.datetime.fromtimestamp(oos_a / 1000, dt.UTC):%Y-%m-%d} → "
                  f"{dt.datetime.fromtimestamp(oos_b / 1000, dt.UTC):%Y-%m-%d} "
                  f"({(oos_b - oos_a) / DAY / 30.44:.1f} months)", "",
                  "| strategy | return | max drawdown | Sharpe | trades | win rate | candidates picked (per month) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        bh = Chain("", buy_and_hold(data, pairs, oos_a, oos_b), [], []).row()
        lines.append(f"| buy and hold | {_pct(bh['return'])} | {_pct(bh['max_dd'])} | {_num(bh['sharpe'])} | – | – | – |")
        chains: dict[str, Chain] = {}
        for strategy in CANDIDATES:
            rs = sorted((r for r in runs if r.period == name and r.strategy == strategy), key=lambda r: r.candidate)
            wf = walk_forward(rs, months)
            chains[strategy] = wf
            row = wf.row()
            label = "reference (rsi_bollinger)" if strategy == "rsi_bollinger" else f"{strategy} (walk-forward)"
            lines.append(f"| {label} | {_pct(row['return'])} | {_pct(row['max_dd'])} | {_num(row['sharpe'])} | "
                         f"{row['trades']} | {_pct(row['win_rate']).lstrip('+')} | "
                         f"{''.join(str(k) for k in wf.picks) if len(rs) > 1 else 'defaults'} |")
            if len(rs) > 1:
                d = walk_forward(rs, months, fixed=0).row()
                lines.append(f"| {strategy} (defaults) | {_pct(d['return'])} | {_pct(d['max_dd'])} | "
                             f"{_num(d['sharpe'])} | {d['trades']} | {_pct(d['win_rate']).lstrip('+')} | 0 always |")
        share = {g: 0 for g in REGIMES}
        total = 0
        for pair in pairs:
            ts, names = labels[pair]
            sel = (ts >= oos_a) & (ts < oos_b)
            for g in REGIMES:
                share[g] += int(np.sum(names[sel] == g))
            total += int(sel.sum())
        lines += ["", "Per regime (out-of-sample trades by the regime the master saw at the decision bar; share of "
                      "5m bars in each regime: " + ", ".join(f"{g} {share[g] / max(total, 1) * 100:.0f} %"
                                                             for g in REGIMES) + "). Cells: trades / win rate / "
                      "sum of trade returns on equity at entry.", "",
                  "| strategy | " + " | ".join(REGIMES) + " |", "| --- |" + " ---: |" * len(REGIMES)]
        for strategy, wf in chains.items():
            cells = []
            for g in REGIMES:
                ts_ = [t for t in wf.trades if regime_of(labels, t[0], t[1]) == g]
                if not ts_:
                    cells.append("–")
                    continue
                wr = sum(1 for t in ts_ if t[2] > 0) / len(ts_)
                ret = sum(t[2] / t[3] for t in ts_ if t[3] > 0)
                cells.append(f"{len(ts_)} / {wr * 100:.0f} % / {ret * 100:+.1f} %")
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Candidates (index → parameters; 0 = defaults):", ""]
    for strategy, cands in CANDIDATES.items():
        lines.append(f"- {strategy}: " + "; ".join(f"{k}: {c or 'defaults'}" for k, c in enumerate(cands)))
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    text = evaluate(args.data.resolve(), args.jobs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
