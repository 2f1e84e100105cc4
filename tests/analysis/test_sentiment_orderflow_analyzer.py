"""Sentiment (funding, long/short ratio), order flow from a local book and its recordings, and the analyzer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.analysis.analyzer import AnalyzerConfig, MarketSnapshot, analyze, book_features
from trader.analysis.orderflow import (
    BookRecorder,
    BookSnapshot,
    load_book_snapshots,
    order_flow,
    orderflow_series,
    snapshot_from_book,
    snapshot_from_depth,
)
from trader.analysis.sentiment import SentimentParams, funding_features, ratio_features
from trader.data.store import bundled_data_dir, load_candles, load_funding
from trader.exchange.orderbook import LocalOrderBook

H8 = 8 * 3_600_000
M5 = 300_000


# -- sentiment --------------------------------------------------------------------------------------------------
def test_funding_is_read_as_of_its_settlement_and_goes_stale_over_a_hole():
    f = pd.DataFrame({"timestamp": np.array([0, 1, 2, 5]) * H8, "funding_rate": [1e-4, 2e-4, -1e-4, 3e-4]})
    grid = np.array([0, H8 - 1, H8, 2 * H8 + 5, 4 * H8, 5 * H8], dtype="int64")
    out = funding_features(grid, f)
    np.testing.assert_allclose(out["funding_rate"], [1e-4, 1e-4, 2e-4, -1e-4, np.nan, 3e-4], equal_nan=True)
    np.testing.assert_allclose(out["funding_change"][2:4], [1e-4, -3e-4])
    assert np.isnan(out["funding_change"][0])  # the first settlement has no change, not a zero one
    assert out["has_funding"].tolist() == [1, 1, 1, 1, 0, 1]


@pytest.mark.parametrize("frame", [None, pd.DataFrame({"timestamp": [], "funding_rate": []})])
def test_no_funding_data_is_absent_not_zero(frame):
    out = funding_features(np.arange(5, dtype="int64"), frame)
    assert np.isnan(out["funding_rate"]).all() and (out["has_funding"] == 0).all()


def test_ratio_waits_one_period_by_default_and_flags_a_crowd():
    n = 600
    lsr = np.r_[np.full(400, 1.0) + 0.02 * np.sin(np.arange(400)), np.full(200, 3.0)]
    ratio = pd.DataFrame({"timestamp": np.arange(n) * M5, "long_short_ratio": lsr,
                          "long_account": lsr / (1 + lsr), "short_account": 1 / (1 + lsr)})
    grid = np.array([0, M5 - 1, M5, 401 * M5, 2000 * M5], dtype="int64")
    out = ratio_features(grid, ratio)
    assert np.isnan(out["ls_ratio"][0]) and np.isnan(out["ls_ratio"][1])  # row 0 is known only at 5m
    assert out["ls_ratio"][2] == lsr[0]
    assert out["ls_ratio"][3] == 3.0 and out["crowd"][3] == 1.0 and out["ls_z"][3] > 2
    assert out["has_ratio"].tolist() == [0, 0, 1, 1, 0]  # the last is far past the data: stale, absent
    exact = ratio_features(grid, ratio, SentimentParams(ratio_delay_ms=0))
    assert exact["ls_ratio"][0] == lsr[0]
    absent = ratio_features(grid, None)
    assert all(np.isnan(absent[k]).all() for k in ("ls_ratio", "ls_z", "crowd")) and not absent["has_ratio"].any()


# -- order flow ---------------------------------------------------------------------------------------------------
def _book() -> LocalOrderBook:
    book = LocalOrderBook("BTCUSDT")
    book.load_snapshot({"lastUpdateId": 10,
                        "bids": [["100.0", "2"], ["99.9", "1"], ["99.8", "1"], ["99.7", "20"], ["99.0", "1"]],
                        "asks": [["100.1", "1"], ["100.2", "1"], ["100.3", "1"], ["100.4", "1"], ["101.0", "1"]]})
    book.apply({"U": 10, "u": 12, "pu": 9, "b": [["99.9", "0"]], "a": [["100.2", "3"]]})
    return book


def test_snapshot_from_the_local_book_and_its_flow():
    snap = snapshot_from_book(_book(), 1_000)
    assert snap.bids[:, 0].tolist() == [100.0, 99.8, 99.7, 99.0] and snap.asks[0].tolist() == [100.1, 1.0]
    assert snap.mid == pytest.approx(100.05)
    f = order_flow(snap, levels=10, band=0.0025, large_multiple=5.0)
    assert f.imbalance == pytest.approx((24 - 7) / 31)
    wb = 2 + 1 / 2 + 20 / 3 + 1 / 4
    wa = 1 + 3 / 2 + 1 / 3 + 1 / 4 + 1 / 5
    assert f.weighted_imbalance == pytest.approx((wb - wa) / (wb + wa))
    assert f.spread == pytest.approx(0.1 / 100.05)
    # ±0.25 % of 100.05: bids ≥ 99.80, asks ≤ 100.30
    nb, na = 100 * 2 + 99.8 * 1, 100.1 + 100.2 * 3 + 100.3
    assert f.band_imbalance == pytest.approx((nb - na) / (nb + na))
    assert [(o.side, o.price) for o in f.large_orders] == [("bid", 99.7)] and f.large_bid and not f.large_ask
    same = snapshot_from_depth({"bids": [[str(p), str(q)] for p, q in snap.bids],
                                "asks": [[str(p), str(q)] for p, q in snap.asks]}, "BTCUSDT", 1_000)
    assert order_flow(same) == order_flow(snap)
    assert book_features(snap)["ob_imbalance"] == order_flow(snap).imbalance


def test_an_empty_side_gives_nan_not_zero():
    snap = BookSnapshot(1, "X", np.empty((0, 2)), np.array([[1.0, 1.0]]))
    assert math.isnan(order_flow(snap).imbalance)


def test_recorder_round_trip_and_series_on_a_bar_grid(tmp_path: Path):
    rec = BookRecorder(tmp_path, "BTC/USDT:USDT", depth=3)
    day = 86_400_000 * 20_000
    snaps = []
    for i, t in enumerate([day - 30_000, day + 10_000, day + 70_000]):
        snaps.append(BookSnapshot(t, "BTCUSDT", np.array([[100.0 - j, 1.0 + i + j] for j in range(5)]),
                                  np.array([[100.5 + j, 2.0] for j in range(5)])))
        rec.add(snaps[-1])
    written = rec.flush()
    assert len(written) == 2  # one file per UTC day
    rec.add(snaps[-1])
    rec.flush()  # the same snapshot again: replaced, not doubled
    back = load_book_snapshots(tmp_path, "BTC/USDT:USDT")
    assert [s.ts_ms for s in back] == [s.ts_ms for s in snaps]
    np.testing.assert_array_equal(back[1].bids, snaps[1].bids[:3])
    assert back[0].symbol == "BTCUSDT"
    grid = np.array([day - 60_000, day, day + 60_000, day + 200_000], dtype="int64")
    out = orderflow_series(back, grid, max_age_ms=60_000)
    assert out["has_book"].tolist() == [0, 1, 1, 0]
    assert out["ob_imbalance"][1] == order_flow(back[0]).imbalance
    assert out["ob_imbalance"][2] == order_flow(back[1]).imbalance
    assert load_book_snapshots(tmp_path, "ETH/USDT:USDT") == []


# -- the analyzer -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def btc_analysis():
    d = bundled_data_dir()
    return analyze("BTC/USDT:USDT", load_candles(d, "BTC/USDT:USDT", "1m"), funding=load_funding(d, "BTC/USDT:USDT"))


def test_analysis_of_the_shipped_month(btc_analysis):
    a = btc_analysis
    assert set(a.frames) == {"5m", "15m", "1h", "4h"}
    g = a.grid_frame()
    assert len(g) == len(a.frames["5m"].bars)
    assert {"trend_5m", "trend_4h", "alignment", "divergence", "regime", "funding_rate", "ls_ratio",
            "ob_imbalance"} <= set(g.columns)
    assert (g["has_ratio"] == 0).all() and g["ls_ratio"].isna().all()  # no ratio file shipped: absent
    assert g["has_funding"].iloc[-1] == 1
    assert set(g["regime"].unique()) >= {"ranging", "trending", "unknown"}
    snap = a.snapshot()
    assert isinstance(snap, MarketSnapshot) and snap.at_ms == a.base.close_ms[-1]
    assert set(snap.trend) == {"5m", "15m", "1h", "4h"} and all(v in (-1, 0, 1) for v in snap.trend.values())
    assert snap.regime in ("ranging", "trending", "volatile", "breakout")
    assert math.isnan(snap.sentiment["ls_ratio"]) and snap.sentiment["has_ratio"] == 0
    assert snap.orderflow["has_book"] == 0
    assert snap.features["1h"]["rsi_14"] == a.frames["1h"].indicators["rsi_14"][-1]
    frame = a.frames["1h"].frame()
    assert len(frame) == len(a.frames["1h"].bars) and "supertrend" in frame and "regime" in frame
    events = a.pattern_events()
    assert events and all(e.source in ("geometry", "template") for e in events)
    assert all(e.completion_ms % 900_000 == 0 for e in events)


def test_snapshot_before_any_data_is_unknown(btc_analysis):
    snap = btc_analysis.snapshot(int(btc_analysis.base.ts_ms[0]) + 60_000)
    assert all(math.isnan(v) for v in snap.trend.values()) and snap.regime == "unknown"
    assert math.isnan(snap.alignment)


def test_higher_timeframe_candles_can_be_supplied():
    d = bundled_data_dir()
    df = load_candles(d, "ETH/USDT:USDT", "1m")
    from trader.data.store import resample

    h4 = resample(df, "1m", "4h")
    short = df.iloc[-3000:]  # two days of minutes: too few for 4h bars of their own
    cfg = AnalyzerConfig()
    a = analyze("ETH/USDT:USDT", short, higher={"4h": h4}, config=cfg, now_ms=int(short.timestamp.iloc[-1]) + 60_000)
    assert len(a.frames["4h"].bars) == len(h4)
    assert not math.isnan(a.snapshot().trend["4h"])


def test_book_features_reach_the_grid_and_the_snapshot():
    d = bundled_data_dir()
    df = load_candles(d, "SOL/USDT:USDT", "1m").iloc[:5000]
    t = (int(df.timestamp.iloc[-1]) + 60_000) // 300_000 * 300_000  # close of the last whole 5m bar
    snap = BookSnapshot(t - 5_000, "SOLUSDT", np.array([[150.0, 10.0]]), np.array([[150.1, 30.0]]))
    a = analyze("SOL/USDT:USDT", df, book=[snap])
    s = a.snapshot(t)
    assert s.orderflow["has_book"] == 1 and s.orderflow["ob_imbalance"] == pytest.approx(-0.5)
    assert a.grid["has_book"][-1] == 1 and a.grid["has_book"][:-1].sum() == 0


def test_mark_candles_without_volume_leave_volume_features_unknown():
    d = bundled_data_dir()
    mark = load_candles(d, "BTC/USDT:USDT", "1h", kind="mark")
    a = analyze("BTC/USDT:USDT", mark, base_timeframe="1h",
                config=AnalyzerConfig(timeframes=("1h", "4h"), grid_timeframe="1h", pattern_timeframes=(),
                                      template_timeframes=()))
    assert np.isnan(a.frames["1h"].features["volume_z"]).all()
    assert not np.isnan(a.frames["1h"].indicators["rsi_14"][-1])


def test_analyze_stored_reads_ratio_and_book_where_they_exist(tmp_path: Path):
    import shutil

    from trader.analysis.analyzer import analyze_stored
    from trader.data.ratio import save_long_short_ratio

    for name in ("BTC_USDT_USDT-1m-futures.parquet", "BTC_USDT_USDT-8h-funding_rate.parquet"):
        shutil.copy(bundled_data_dir() / name, tmp_path / name)
    end = 1_747_000_000_000 // M5 * M5
    ts = end - M5 * np.arange(400, 0, -1)
    save_long_short_ratio(pd.DataFrame({"timestamp": ts, "long_short_ratio": 1.5, "long_account": 0.6,
                                        "short_account": 0.4}), tmp_path, "BTC/USDT:USDT")
    rec = BookRecorder(tmp_path, "BTC/USDT:USDT")
    rec.add(BookSnapshot(end - 10_000, "BTCUSDT", np.array([[100.0, 3.0]]), np.array([[100.1, 1.0]])))
    rec.flush()
    a = analyze_stored(tmp_path, "BTC/USDT:USDT", end_ms=end)
    s = a.snapshot(end)
    assert s.sentiment["has_ratio"] == 1 and s.sentiment["ls_ratio"] == 1.5
    assert s.orderflow["has_book"] == 1 and s.orderflow["ob_imbalance"] == pytest.approx(0.5)
    assert s.sentiment["has_funding"] == 1
    g = a.grid_frame()
    assert g["has_ratio"].iloc[0] == 0 and g["has_ratio"].iloc[-1] == 1  # only where the file has rows
