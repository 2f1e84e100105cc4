"""Writing a result to disk: ``<dir>/<run id>/trades.csv, equity.csv, result.json``.

USDT amounts are written rounded to 8 decimals (the precision Binance reports balances with); prices and
quantities as computed; times as ISO-8601 UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trader.backtest.runner import BacktestResult

DEFAULT_DIR = Path("user_data") / "backtest_results"
TRADE_COLUMNS = [
    "pair", "side", "open_time", "close_time", "qty", "entry_price", "exit_price", "realized_pnl", "fees",
    "funding", "liquidation_fee", "net_pnl", "return_on_equity", "exit_reason", "liquidated", "fills",
]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def _iso_all(ms: np.ndarray) -> list[str]:
    """``iso`` of every time, by numpy when they are whole seconds (a row per bar: a million ``datetime`` objects
    were seconds of a million-bar export); the same strings."""
    ms = np.asarray(ms, dtype="int64")
    if len(ms) and not (ms % 1000).any():
        return [f"{t}Z" for t in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="s").tolist()]
    return [iso(int(x)) for x in ms]


def usdt(x: float) -> float:
    return round(float(x), 8)


def _clean(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def result_summary(result: BacktestResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document describing a run (also what the database keeps in ``BacktestRun.metrics``)."""
    return _clean({
        "run_id": result.run_id,
        "strategy": result.strategy,
        "params": result.params,
        "pairs": result.pairs,
        "timeframe": result.timeframe,
        "leverage": result.leverage,
        "start": iso(result.start_ms),
        "end": iso(result.end_ms),
        "bars": result.bars,
        "initial_wallet": usdt(result.initial_wallet),
        "final_wallet": usdt(result.final_wallet),
        "metrics": result.metrics.to_dict(),
        "segments": [{"start": iso(s.start_ms), "end": iso(s.end_ms), "bars": s.bars, "skipped": s.skipped}
                     for s in result.segments],
        "gaps": [{"pair": g.pair, "start": iso(g.start_ms), "end": iso(g.end_ms), "missing": g.missing}
                 for g in result.gaps],
        "rejections": len(result.rejections),
        "rejection_samples": result.rejections[:50],
        "assumptions": result.assumptions,
        "risk_counts": result.risk_counts,
        "elapsed_s": round(result.elapsed_s, 3),
        **(extra or {}),
    })


def write_export(result: BacktestResult, base_dir: Path | str = DEFAULT_DIR,
                 extra: dict[str, Any] | None = None) -> Path:
    out = Path(base_dir) / result.run_id
    out.mkdir(parents=True, exist_ok=False)
    with (out / "trades.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for t in result.trades:
            w.writerow([
                t.pair, t.side, iso(t.open_ms), iso(t.close_ms), t.qty, t.entry_price, t.exit_price,
                usdt(t.realized_pnl), usdt(t.fees), usdt(t.funding), usdt(t.liquidation_fee), usdt(t.net_pnl),
                round(t.return_on_equity, 10), t.exit_reason, int(t.liquidated), t.fills,
            ])
    with (out / "equity.csv").open("w", newline="") as fh:
        fh.write("time,equity\n")
        fh.writelines(f"{t},{round(v, 8)}\n" for t, v in zip(_iso_all(result.equity_ms), result.equity.tolist(),
                                                               strict=True))
    (out / "result.json").write_text(json.dumps(result_summary(result, extra), indent=2, allow_nan=False))
    return out
