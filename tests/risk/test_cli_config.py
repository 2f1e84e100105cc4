"""``bsmart backtest --config F`` reads the config's risk section: what a user sets there changes the trades."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bot.cli import main


def _run(isolated: Path, capsys, name: str, risk: dict) -> tuple[list[dict], dict]:
    config = isolated / f"{name}.json"
    config.write_text(json.dumps({"risk": risk}))
    rc = main(["backtest", "--config", str(config), "--pairs", "BTC,ETH", "--timeframe", "5m",
               "--timerange", "20250505-20250512", "--export", name, "--no-db", "--montecarlo", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (run_dir,) = (isolated / name).iterdir()
    with (run_dir / "trades.csv").open() as fh:
        trades = list(csv.DictReader(fh))
    return trades, json.loads((run_dir / "result.json").read_text())


def test_risk_per_trade_in_the_config_sizes_the_backtest(isolated: Path, capsys) -> None:
    small, small_doc = _run(isolated, capsys, "small", {"risk_per_trade": 0.002})
    large, large_doc = _run(isolated, capsys, "large", {"risk_per_trade": 0.02})
    assert small_doc["params"]["risk_per_trade"] == 0.002 and large_doc["params"]["risk_per_trade"] == 0.02
    first_small, first_large = small[0], large[0]
    # The same first signal, a tenth of the risk: a tenth of the size (to the lot step).
    assert (first_small["pair"], first_small["open_time"]) == (first_large["pair"], first_large["open_time"])
    ratio = float(first_small["qty"]) / float(first_large["qty"])
    assert abs(ratio - 0.1) < 0.01, ratio
    assert "risk_counts" in large_doc


def test_a_rule_set_in_the_config_acts_in_the_backtest(isolated: Path, capsys) -> None:
    _trades, plain = _run(isolated, capsys, "plain", {})
    _trades, strict = _run(isolated, capsys, "strict", {"correlation_max": 0.1, "loss_streak": 1})
    assert strict["risk_counts"]["correlation"]["blocked"] > 0
    assert strict["risk_counts"]["loss_streak"]["shrunk"] > plain["risk_counts"].get("loss_streak", {}).get("shrunk", 0)
