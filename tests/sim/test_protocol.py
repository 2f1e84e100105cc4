"""Signing, rate limits, faults, the admin API and state persistence."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal as D

import ccxt
import pytest

from tests.sim.conftest import BTC, START, hold_price, sim_config
from trader.sim import SimulatorThread
from trader.sim.client import make_client
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET


def _admin(sim: SimulatorThread, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.rest_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_signing_failures_map_to_ccxt_errors(sim):
    bad_secret = make_client(sim.rest_url, DEFAULT_API_KEY, "x" * 64)
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad_secret.fetch_balance()
    unknown = make_client(sim.rest_url, "A" * 64, DEFAULT_API_SECRET)
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        unknown.fetch_balance()
    malformed = make_client(sim.rest_url, "not a key!", DEFAULT_API_SECRET)
    with pytest.raises(ccxt.AuthenticationError, match="-2014"):
        malformed.fetch_balance()
    late = make_client(sim.rest_url, config={"options": {"timeDifference": 11_000}})  # recvWindow is 10 s
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        late.fetch_balance()
    slightly_late = make_client(sim.rest_url, config={"options": {"timeDifference": 9_000}})
    assert slightly_late.fetch_balance()["USDT"]["total"] == 10_000
    early = make_client(sim.rest_url, config={"options": {"timeDifference": -1_500}})
    with pytest.raises(ccxt.InvalidNonce, match="ahead"):
        early.fetch_balance()


def test_weight_headers_then_429_then_418(sim, ex):
    sim.call(lambda s: (setattr(s.weights, "limit", 12), setattr(s.weights, "ban_after_429s", 2),
                        setattr(s.weights, "clock", lambda: 6_000.0)))
    ex.fetch_time()
    used = int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    for _ in range(12 - used):
        ex.fetch_time()
    assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "12"
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):
            ex.fetch_time()
        assert ex.last_http_response and "-1003" in ex.last_http_response
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(sim.rest_url + "/fapi/v1/time", timeout=5)
    assert e.value.code == 418
    # A new minute does not lift a ban; its expiry does.
    sim.call(lambda s: setattr(s.weights, "clock", lambda: 6_000.0 + 121))
    assert ex.fetch_time() == START


def test_order_count_headers(sim, ex):
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    assert ex.last_response_headers["X-MBX-ORDER-COUNT-1M"] == "1"
    ex.create_order(BTC, "market", "sell", 0.01)
    assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "2"


def test_injected_errors_latency_and_status_unknown(sim, ex):
    _admin(sim, "POST", "/_sim/faults", {"error_share": 1.0, "error_kinds": ["503"]})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ticker(BTC)
    _admin(sim, "POST", "/_sim/faults", {"error_kinds": ["-1001"]})
    with pytest.raises(ccxt.OperationFailed, match="-1001"):
        ex.fetch_ticker(BTC)
    _admin(sim, "POST", "/_sim/faults", {"error_kinds": ["429"]})
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_ticker(BTC)
    hold_price(sim, 100_000)
    # −1007: the answer is a timeout but the order went through — the client must reconcile, not resend.
    _admin(sim, "POST", "/_sim/faults", {"error_kinds": ["-1007"]})
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "unknown-1"})
    _admin(sim, "POST", "/_sim/faults", {"error_share": 0.0, "latency_ms": 60, "jitter_ms": 0})
    assert ex.fetch_order(None, BTC, params={"origClientOrderId": "unknown-1"})["status"] == "closed"
    t0 = time.perf_counter()
    ex.fetch_time()
    assert time.perf_counter() - t0 >= 0.06


def test_maintenance_window(sim, ex):
    _admin(sim, "POST", "/_sim/faults", {"maintenance_start_ms": START, "maintenance_end_ms": START + 60_000})
    assert ex.fetch_status()["status"] == "maintenance"
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ticker(BTC)
    sim.step(60_000)
    assert ex.fetch_status()["status"] == "ok"
    assert ex.fetch_ticker(BTC)["last"] > 0


def test_admin_api_drives_the_market(sim, ex):
    assert _admin(sim, "GET", "/_sim/clock")["time_ms"] == START
    _admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": 100000})
    assert _admin(sim, "POST", "/_sim/clock/step", {"seconds": 1})["time_ms"] == START + 1000
    ex.create_order(BTC, "market", "buy", 0.01)
    ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 97_000, "reduceOnly": True})
    # A 5 % flash crash over 30 s, back up afterwards: the stop fires on the way down.
    _admin(sim, "POST", "/_sim/flash_crash", {"symbol": "BTCUSDT", "drop_pct": 5, "duration_s": 30})
    _admin(sim, "POST", "/_sim/clock/step", {"seconds": 30})
    state = _admin(sim, "GET", "/_sim/state")
    assert state["positions"] == [] and state["open_algo_orders"] == []
    assert D(state["prices"]["BTCUSDT"]["last"]) == D("100000.0")
    _admin(sim, "POST", "/_sim/price/script", {"symbol": "BTCUSDT", "points": [[10_000, 110000]], "hold": True})
    _admin(sim, "POST", "/_sim/clock/step", {"seconds": 5})
    assert ex.fetch_ticker(BTC)["last"] == pytest.approx(105_000, abs=0.1)
    _admin(sim, "DELETE", "/_sim/price", {"symbol": "BTCUSDT"})
    _admin(sim, "POST", "/_sim/deposit", {"amount": 500})
    assert ex.fetch_balance()["USDT"]["total"] == pytest.approx(10_500 + state_pnl(state), abs=1e-6)


def state_pnl(state: dict) -> float:
    return float(state["account"]["wallet"]) - 10_000


def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "sim-state.json"
    with SimulatorThread(sim_config(state_file=path)) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        ex.set_leverage(25, BTC)
        hold_price(sim, 100_000)
        ex.create_order(BTC, "market", "buy", 0.01)
        resting = ex.create_order(BTC, "limit", "buy", 0.01, 90_000)
        stop = ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 95_000, "reduceOnly": True})
        sim.step(60_000)
        before = (ex.fetch_balance()["info"]["totalWalletBalance"], ex.fetch_time(), ex.fetch_my_trades(BTC))
    assert path.exists()
    with SimulatorThread(sim_config(state_file=path)) as sim:
        ex = make_client(sim.rest_url)
        ex.load_markets()
        after = (ex.fetch_balance()["info"]["totalWalletBalance"], ex.fetch_time(), ex.fetch_my_trades(BTC))
        assert after == before
        (pos,) = ex.fetch_positions([BTC])
        assert pos["contracts"] == 0.01
        assert [o["id"] for o in ex.fetch_open_orders(BTC)] == [resting["id"]]
        assert [o["id"] for o in ex.fetch_open_orders(BTC, params={"trigger": True})] == [stop["id"]]
        assert ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})[0]["leverage"] == "25"
        # New ids continue the old sequence.
        nxt = ex.create_order(BTC, "limit", "buy", 0.01, 91_000)
        assert int(nxt["id"]) > int(stop["id"])
