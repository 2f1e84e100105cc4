"""Export files of a run."""

from __future__ import annotations

import csv
import json

import pytest

from trader.backtest.export import write_export
from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest


def test_export_writes_trades_equity_and_result(tmp_path) -> None:
    s, _ = parse_timerange("20250520-")
    res = run_backtest(BacktestRequest(pairs=("BTC",), start_ms=s, end_ms=s + 86_400_000))
    out = write_export(res, tmp_path)
    assert out == tmp_path / res.run_id and len(res.run_id) <= 36
    rows = list(csv.DictReader((out / "trades.csv").open()))
    assert len(rows) == len(res.trades) > 0
    assert sum(float(r["net_pnl"]) for r in rows) == pytest.approx(res.final_wallet - res.initial_wallet, abs=1e-5)
    assert rows[0]["open_time"].endswith("Z")
    eq = (out / "equity.csv").read_text().splitlines()
    assert eq[0] == "time,equity" and len(eq) == res.bars + 1
    doc = json.loads((out / "result.json").read_text())
    assert doc["run_id"] == res.run_id and doc["bars"] == res.bars
    assert doc["metrics"]["trades"] == len(res.trades)
    assert doc["start"] == "2025-05-20T00:00:00Z"
    with pytest.raises(FileExistsError):
        write_export(res, tmp_path)  # a run directory is never overwritten
