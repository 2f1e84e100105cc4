"""Fusion: neutral start, Beta updates per regime, muting, persistence across a restart, the display table, and the
master learning from its own trades."""

from __future__ import annotations

import json
import math

import pytest

from trader.backtest.runner import BacktestRequest, parse_timerange, run_backtest
from trader.strategy.fusion import FusionBook, fusion_table


def test_neutral_priors_weigh_every_source_alike() -> None:
    book = FusionBook()
    f = book.fuse("ranging", {"technical": 1.0, "mtf": -1.0, "volume": 0.5})
    assert f.weights == {"technical": 0.5, "mtf": 0.5, "volume": 0.5}
    assert f.score == pytest.approx(0.5 / 3)
    assert math.isnan(book.fuse("ranging", {}).score)


def test_updates_move_weights_per_regime_and_persist(tmp_path) -> None:
    path = tmp_path / "fusion" / "weights.json"
    book = FusionBook.load(path)
    for _ in range(10):
        book.update("trending", {"technical": 1.0, "mtf": -0.5}, outcome=+1, at_ms=1)
    assert book.weight("trending", "technical") > 0.8
    assert book.weight("trending", "mtf") == 0.0  # wrong ten times: muted
    assert book.weight("ranging", "technical") == 0.5  # another regime learns on its own
    raw = json.loads(path.read_text())
    assert raw["posteriors"]["trending"]["technical"]["n"] == 10
    again = FusionBook.load(path)  # a restart
    assert again.weight("trending", "technical") == pytest.approx(book.weight("trending", "technical"))
    rows = {(r["regime"], r["source"]): r for r in fusion_table(path)}
    assert rows[("trending", "mtf")]["muted"] and rows[("ranging", "ml")]["n"] == 0
    assert rows[("trending", "technical")]["low"] < rows[("trending", "technical")]["hit_rate"]


def test_decay_forgets_toward_the_prior() -> None:
    book = FusionBook(decay=0.5)
    for _ in range(20):
        book.update("ranging", {"technical": 1.0}, outcome=+1)
    assert book.posterior("ranging", "technical").alpha < 3.01  # 1 + 1/(1 − 0.5): bounded memory


def test_the_master_learns_from_its_trades_and_saves_the_book(tmp_path) -> None:
    path = tmp_path / "book.json"
    s, e = parse_timerange("20250504-20250603")
    res = run_backtest(BacktestRequest(strategy="master", pairs=("BTC", "ETH", "SOL"), timeframe="5m", start_ms=s,
                                       end_ms=e, strategy_params={"fusion_path": str(path)}))
    book = FusionBook.load(path)
    seen = sum(p.n for per in book.posteriors.values() for name, p in per.items() if name == "technical")
    assert 0 < seen <= len(res.trades)
