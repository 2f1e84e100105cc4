"""Exchange rules come from the exchange's own data (trader.model.rules): bundled snapshots, snapshots saved by
``bsmart download`` beside the candles, the one nearest a backtest's range, and a clear refusal without any."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trader.backtest.runner import BacktestRequest, run_backtest
from trader.data.store import bundled_data_dir, load_candles
from trader.model.instruments import MissingRules
from trader.model.money import max_notional
from trader.model.rules import RuleBook, instrument, resolve_rules, save_snapshot

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
DAY = 86_400_000
MAY_5 = 1_746_403_200_000  # 2025-05-05T00:00Z


def test_bundled_rules_cover_the_sample_pairs() -> None:
    btc, eth, sol = (instrument(p) for p in (BTC, ETH, SOL))
    assert (btc.step_size, btc.tick_size, btc.min_notional, btc.liquidation_fee) == (0.001, 0.1, 100.0, 0.0125)
    assert btc.assumed == ()
    assert (eth.step_size, eth.min_notional) == (0.001, 20.0)
    assert (sol.step_size, sol.tick_size, sol.min_notional) == (1.0, 0.01, 5.0)
    # SOLUSDT's own brackets (100x to 20k, 0.5 %), not BTC's: at 25x SOL's cap is 4M, BTC's 70M.
    assert (sol.brackets[0].max_leverage, sol.brackets[0].cap, sol.brackets[0].mmr) == (100, 20_000, 0.005)
    assert max_notional(sol.brackets, 25) == 4_000_000 and max_notional(btc.brackets, 25) == 70_000_000
    # The liquidation fee is documented for BTCUSDT only: the others say they assume it.
    assert eth.assumed == ("liquidation_fee",) and sol.assumed == ("liquidation_fee",)


def test_a_pair_without_rules_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingRules, match=r"DOGE/USDT:USDT: no exchangeInfo filters and no leverage brackets for "
                                           r"DOGEUSDT"):
        resolve_rules([BTC, "DOGE/USDT:USDT"], tmp_path)


def test_backtest_outside_the_table_is_refused_not_given_invented_filters(tmp_path: Path) -> None:
    # The case: a pair outside the built-in table traded 9,897.942253 coins at an invented step of 1e-6.
    df = load_candles(bundled_data_dir(), SOL, "1m").head(3_000)
    with pytest.raises(MissingRules, match="DOGE/USDT:USDT"):
        run_backtest(BacktestRequest(pairs=("DOGE/USDT:USDT",), candles={"DOGE/USDT:USDT": df}, use_mark=False,
                                     use_funding=False, data_dir=tmp_path))


def _entry(symbol: str, step: str, tick: str = "0.01", notional: str = "5", fee: str | None = "0.0150") -> dict:
    e = {"symbol": symbol, "baseAsset": symbol[:-4], "quoteAsset": "USDT", "pricePrecision": 4, "quantityPrecision": 0,
         "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "100000", "tickSize": tick},
                     {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000000", "stepSize": step},
                     {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "50000", "stepSize": step},
                     {"filterType": "MIN_NOTIONAL", "notional": notional}]}
    if fee is not None:
        e["liquidationFee"] = fee
    return e


def _brackets(symbol: str, mmr: float) -> dict:
    return {"symbol": symbol, "brackets": [
        {"bracket": 1, "initialLeverage": 50, "notionalCap": 10_000, "notionalFloor": 0, "maintMarginRatio": mmr,
         "cum": 0.0},
        {"bracket": 2, "initialLeverage": 20, "notionalCap": 100_000, "notionalFloor": 10_000,
         "maintMarginRatio": 0.05, "cum": 10_000 * (0.05 - mmr)}]}


def test_the_snapshot_nearest_the_range_is_used(tmp_path: Path) -> None:
    save_snapshot(tmp_path, MAY_5 - 200 * DAY, symbols=[_entry("DOGEUSDT", "10")], brackets=[_brackets("DOGEUSDT", 0.01)])
    save_snapshot(tmp_path, MAY_5 + 3 * DAY, symbols=[_entry("DOGEUSDT", "1")], brackets=[_brackets("DOGEUSDT", 0.02)])
    save_snapshot(tmp_path, MAY_5 + 300 * DAY, symbols=[_entry("DOGEUSDT", "100")])
    early = instrument("DOGE/USDT:USDT", tmp_path, MAY_5 - 190 * DAY)
    assert early.step_size == 10.0 and early.brackets[0].mmr == 0.01
    may = resolve_rules(["DOGE/USDT:USDT"], tmp_path, MAY_5, MAY_5 + 10 * DAY)
    spec = may.specs["DOGE/USDT:USDT"]
    assert spec.step_size == 1.0 and spec.brackets[0].mmr == 0.02 and spec.liquidation_fee == 0.015
    assert "leverage_bracket-20250508.json" in spec.source and may.notes == []
    late = instrument("DOGE/USDT:USDT", tmp_path, MAY_5 + 400 * DAY)
    assert late.step_size == 100.0 and late.brackets[0].mmr == 0.02  # brackets: the nearest that has them


def test_a_data_dir_without_a_snapshot_falls_back_to_the_bundled_one_and_says_so(tmp_path: Path) -> None:
    for f in bundled_data_dir().glob("BTC_USDT_USDT-1m-futures.parquet"):
        shutil.copy(f, tmp_path / f.name)
    res = run_backtest(BacktestRequest(pairs=(BTC,), timeframe="1m", data_dir=tmp_path, start_ms=MAY_5,
                                       end_ms=MAY_5 + DAY, use_mark=False, use_funding=False))
    assert any(a.startswith(f"{BTC}: no exchangeInfo filters or leverage brackets snapshot in {tmp_path}; used the "
                            "bundled snapshot of 2024-10-24") for a in res.assumptions), res.assumptions
    # A snapshot of its own (filters only, as a download without keys saves) is used for the filters; the
    # brackets still come from the bundled one, and the run says which.
    e = json.loads((bundled_data_dir() / "exchange_info-20241024.json").read_text())["symbols"][0]
    save_snapshot(tmp_path, MAY_5, symbols=[e])
    res = run_backtest(BacktestRequest(pairs=(BTC,), timeframe="1m", data_dir=tmp_path, start_ms=MAY_5,
                                       end_ms=MAY_5 + DAY, use_mark=False, use_funding=False))
    assert any("no leverage brackets snapshot in" in a for a in res.assumptions), res.assumptions


def test_the_bundled_sample_runs_without_fallback_notes() -> None:
    res = run_backtest(BacktestRequest(pairs=(BTC, SOL), timeframe="15m"))
    assert not any("snapshot" in a for a in res.assumptions), res.assumptions
    assert f"{SOL}: assumed exchange rules: liquidation_fee" in res.assumptions


def test_snapshots_of_one_day_merge_and_the_book_reloads(tmp_path: Path) -> None:
    save_snapshot(tmp_path, MAY_5, symbols=[_entry("AAAUSDT", "1")])
    assert RuleBook.load(tmp_path).symbols() == {"AAAUSDT"}
    save_snapshot(tmp_path, MAY_5 + 3_600_000, symbols=[_entry("BBBUSDT", "1")])
    doc = json.loads((tmp_path / "exchange_info-20250505.json").read_text())
    assert [s["symbol"] for s in doc["symbols"]] == ["AAAUSDT", "BBBUSDT"]
    assert RuleBook.load(tmp_path).symbols() == {"AAAUSDT", "BBBUSDT"}
