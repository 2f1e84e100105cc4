"""Public REST through ccxt: markets, candles from the Parquet replay, funding, book, status."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import ccxt
import pytest

from tests.sim.conftest import BTC, START, sim_config
from trader.data.store import bundled_data_dir, load_candles, load_funding
from trader.sim import SimulatorThread
from trader.sim.client import make_client


def test_markets_carry_binance_filters(ex):
    m = ex.market(BTC)
    assert m["id"] == "BTCUSDT" and m["swap"] and m["linear"] and m["settle"] == "USDT"
    assert m["precision"] == {"amount": 0.001, "price": 0.1, "base": 1e-08, "quote": 1e-08}
    assert m["limits"]["cost"]["min"] == 100 and m["limits"]["market"]["max"] == 120
    assert "TRAILING_STOP_MARKET" in m["info"]["orderTypes"] and m["info"]["liquidationFee"] == "0.012500"
    assert set(ex.symbols) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
    assert ex.market("SOL/USDT:USDT")["precision"]["amount"] == 1


def test_time_follows_the_stepped_clock(sim, ex):
    assert ex.fetch_time() == START
    sim.step(90_000)
    assert ex.fetch_time() == START + 90_000


def test_klines_replay_the_parquet_candles(sim, ex):
    sim.step(10 * 60_000)
    now = START + 10 * 60_000
    df = load_candles(bundled_data_dir(), BTC, "1m", start_ms=now - 5 * 60_000, end_ms=now)
    got = ex.fetch_ohlcv(BTC, "1m", limit=6)
    closed, current = got[:-1], got[-1]
    assert [r[0] for r in closed] == df["timestamp"].tolist()
    for row, (_, c) in zip(closed, df.iterrows(), strict=True):
        assert row[1:5] == [c["open"], c["high"], c["low"], c["close"]]
    assert current[0] == now and current[1] == current[4]  # the bar that just opened
    # 5m bars aggregate the 1m bars aligned to the epoch
    aligned = now // 300_000 * 300_000 - 300_000
    five = ex.fetch_ohlcv(BTC, "5m", since=aligned, limit=2)
    df5 = load_candles(bundled_data_dir(), BTC, "1m", start_ms=aligned, end_ms=aligned + 300_000)
    assert five[0][1:5] == [df5["open"].iloc[0], df5["high"].max(), df5["low"].min(), df5["close"].iloc[-1]]
    assert five[0][5] == pytest.approx(df5["volume"].sum())


def test_price_inside_a_bar_follows_the_ohlc_path(sim, ex):
    df = load_candles(bundled_data_dir(), BTC, "1m", start_ms=START, end_ms=START + 60_000)
    o, h, lo, c = df.iloc[0][["open", "high", "low", "close"]]
    first, second = (lo, h) if c >= o else (h, lo)
    sim.step(20_000)
    assert ex.fetch_ticker(BTC)["last"] == pytest.approx(first, abs=0.05)
    sim.step(20_000)
    assert ex.fetch_ticker(BTC)["last"] == pytest.approx(second, abs=0.05)


def test_mark_price_uses_the_mark_candles(sim, ex):
    mark = load_candles(bundled_data_dir(), BTC, "1h", "mark")
    fut = load_candles(bundled_data_dir(), BTC, "1m")
    hour = (START // 3_600_000 + 1) * 3_600_000
    sim.step(hour - START)
    expected = mark.set_index("timestamp").loc[hour, "open"]
    assert fut.set_index("timestamp").loc[hour, "open"] != pytest.approx(expected, abs=0.05)  # a real basis
    assert ex.fetch_funding_rate(BTC)["markPrice"] == pytest.approx(expected, abs=0.1)
    mk = ex.fetch_ohlcv(BTC, "1h", since=hour, limit=1, params={"price": "mark"})
    assert mk[0][1] == pytest.approx(expected, abs=0.1)


def test_funding_rate_history_and_next_funding(sim, ex):
    rates = ex.fetch_funding_rate_history(BTC, since=START - 3 * 8 * 3_600_000, limit=3)
    f = load_funding(bundled_data_dir(), BTC, start_ms=START - 3 * 8 * 3_600_000, end_ms=START)
    assert [r["timestamp"] for r in rates] == f["timestamp"].tolist()
    assert [r["fundingRate"] for r in rates] == pytest.approx(f["funding_rate"].tolist())
    fr = ex.fetch_funding_rate(BTC)
    assert fr["fundingTimestamp"] == START - 60_000 + 8 * 3_600_000
    # No look-ahead: the shown rate is the one settled at 00:00, not the file's 08:00 value.
    settled = load_funding(bundled_data_dir(), BTC, start_ms=START - 60_000, end_ms=START)["funding_rate"].iloc[0]
    assert fr["fundingRate"] == pytest.approx(settled)
    future = load_funding(bundled_data_dir(), BTC, start_ms=START, end_ms=START + 9 * 3_600_000)
    assert fr["fundingRate"] != pytest.approx(future["funding_rate"].iloc[0])


def test_order_book_shape_and_thinning(sim, ex):
    book = ex.fetch_order_book(BTC, 20)
    bids, asks = book["bids"], book["asks"]
    assert bids[0][0] < asks[0][0] and len(bids) == len(asks) == 20
    assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
    assert [a[0] for a in asks] == sorted(a[0] for a in asks)
    bt = ex.fapiPublicGetTickerBookTicker({"symbol": "BTCUSDT"})
    assert D(bt["bidPrice"]) == D(str(bids[0][0])) and D(bt["askPrice"]) == D(str(asks[0][0]))
    calm = sum(a[1] for a in asks)
    sim.call(lambda s: s.set_book({"volatility_thinning": 0.0, "level_notional": 300_000}))
    assert sum(a[1] for a in ex.fetch_order_book(BTC, 20)["asks"]) > calm


def test_volatile_bar_thins_the_book(sim, ex):
    depth_normal = sum(a[1] for a in ex.fetch_order_book(BTC, 20)["asks"])
    sim.call(lambda s: s.flash_crash("BTCUSDT", 5, 30_000))
    sim.step(5_000)
    book = ex.fetch_order_book(BTC, 20)
    assert sum(a[1] for a in book["asks"]) < depth_normal / 2
    spread_bps = (book["asks"][0][0] - book["bids"][0][0]) / book["bids"][0][0] * 1e4
    assert spread_bps > 0.5


def test_status_tickers_and_bad_symbol(sim, ex):
    assert ex.fetch_status()["status"] == "ok"
    t = ex.fetch_ticker(BTC)
    assert t["last"] > 0 and t["high"] >= t["low"]
    assert len(ex.fetch_tickers()) == 3
    with pytest.raises(ccxt.BadSymbol):
        ex.fapiPublicGetDepth({"symbol": "NOPEUSDT"})


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "futures"


@pytest.mark.skipif(not (SHARED / "1INCH_USDT_USDT-1h-futures.parquet").exists(), reason="no ../shared/data")
def test_shared_layout_with_hourly_only_pair():
    """A pair with only 1h candles replays hour bars; intervals finer than the data are refused (−1120)."""
    with SimulatorThread(sim_config(data_dir=SHARED, pairs=["1INCH"], start_ms=None)) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        sim.step(3 * 3_600_000)
        df = load_candles(SHARED, "1INCH/USDT:USDT", "1h")
        now = ex.fetch_time()
        got = ex.fetch_ohlcv("1INCH/USDT:USDT", "1h", limit=3)
        closed = df[df["timestamp"] == got[0][0]].iloc[0]
        assert got[0][1:5] == pytest.approx([closed["open"], closed["high"], closed["low"], closed["close"]])
        assert got[-1][0] == now // 3_600_000 * 3_600_000
        with pytest.raises(ccxt.BadRequest, match="-1120"):
            ex.fetch_ohlcv("1INCH/USDT:USDT", "1m", limit=3)
