"""The exported metrics: the exchange taps against the simulator over real sockets, the bus counters, the state
sample, and the endpoint of a running main job."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.main_job import run_main_job
from trader.config.loader import load_settings
from trader.events import EngineError, EventBus, OrderFilled
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions
from trader.exchange.errors import ExchangeError
from trader.exchange.klines import KlineStreams
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.exchange.streams import MarkPriceStream, StreamOptions
from trader.monitoring.exchange_meter import MeteredExchangeClient, order_purpose
from trader.monitoring.metrics import Metrics, StateSample, exposed_names, make_metrics
from trader.monitoring.sampler import watch_bus
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
BTC = PAIRS[0]
MINUTE = 60_000


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)) as server:
        yield server


def _metered(sim: SimulatorServer, metrics: Metrics, *, wall_clock: bool) -> MeteredExchangeClient:
    options = ClientOptions(api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"), api_key=DEFAULT_API_KEY,
                            secret=DEFAULT_API_SECRET, backoff=BackoffPolicy(attempts=2, base_s=0.01, cap_s=0.02),
                            resolve_delay_s=0.01)
    return MeteredExchangeClient(options, metrics=metrics, event_times_are_wall_clock=wall_clock)


def _value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_order_purpose_from_our_ids() -> None:
    assert order_purpose(client_order_id(7, "entry")) == "entry"
    assert order_purpose(client_order_id(7, "tp2", 3, run="dry")) == "tp2"
    assert order_purpose("web_abc123") == "other"


async def test_candle_to_order_orders_errors_and_rest_latency(sim) -> None:
    metrics = make_metrics(dry_run=True)
    client = _metered(sim, metrics, wall_clock=False)
    closed = []
    start = (sim.clock.now_ms() // MINUTE) * MINUTE
    # The engine's candle path (trader/exchange/klines.py: its own socket, not ccxt's handler) must still be timed.
    stream = KlineStreams(client, {BTC: closed.append}, last_closed={BTC: start - MINUTE},
                          options=StreamOptions(heartbeat_s=5.0))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        await client.initialize(PAIRS, 25)
        for _ in range(100):  # the socket subscribes lazily: nudge the clock until it speaks
            if stream.connected.is_set():
                break
            sim.step(1000)
            await asyncio.sleep(0.05)
        sim.step(MINUTE)
        await _until(lambda: len(closed) >= 1)
        entry = OrderRequest(BTC, "buy", "market", client_order_id(1, "entry"), amount=Decimal("0.01"))
        await client.create_order(entry)
        # The stop that follows the fill answers the fill, not the candle: it is not timed.
        stop_order = OrderRequest(BTC, "sell", "stop_market", client_order_id(1, "stop"), trigger_price=Decimal(1000),
                                  close_position=True)
        await client.create_order(stop_order)
        tiny = OrderRequest(BTC, "buy", "market", client_order_id(2, "entry"), amount=Decimal("0.001"))
        with pytest.raises(ExchangeError):
            await client.create_order(tiny)  # below the minimum notional: a parameter error
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert _value(metrics, "bsmart_candle_to_order_seconds_count") == 1  # one candle, one decision timed
    assert 0 < _value(metrics, "bsmart_candle_to_order_seconds_sum") < 5
    assert _value(metrics, "bsmart_orders_total", {"type": "market", "purpose": "entry", "outcome": "accepted"}) == 1
    assert _value(metrics, "bsmart_orders_total",
                  {"type": "stop_market", "purpose": "stop", "outcome": "accepted"}) == 1
    assert _value(metrics, "bsmart_orders_total", {"type": "market", "purpose": "entry", "outcome": "parameter"}) == 1
    assert _value(metrics, "bsmart_exchange_errors_total", {"class": "parameter"}) >= 1
    assert _value(metrics, "bsmart_rest_latency_seconds_count", {"endpoint": "POST /fapi/v1/order"}) >= 2
    assert _value(metrics, "bsmart_rest_latency_seconds_count", {"endpoint": "GET /fapi/v1/exchangeInfo"}) >= 1
    # The simulator's replay clock is not wall time: no websocket lag was recorded rather than a wrong one.
    assert not any(s.name.startswith("bsmart_ws_lag_seconds") for f in metrics.registry.collect() for s in f.samples)
    assert _value(metrics, "bsmart_api_weight_used") > 0
    assert _value(metrics, "bsmart_api_weight_limit") == client.gate.state.limit
    assert _value(metrics, "bsmart_latency_tier") == 0
    await client.close()
    assert _value(metrics, "bsmart_latency_tier") is None  # no open client: nothing is measured, nothing exported


async def test_websocket_lag_when_event_times_are_wall_clock(sim) -> None:
    metrics = make_metrics(dry_run=True)
    client = _metered(sim, metrics, wall_clock=True)
    marks = []
    stream = MarkPriceStream(client, BTC, lambda pair, mark, info: marks.append(mark))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        for _ in range(40):
            sim.step(1000)
            await asyncio.sleep(0.05)
            if len(marks) >= 2:
                break
        await _until(lambda: len(marks) >= 2)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    seen = _value(metrics, "bsmart_ws_lag_seconds_count", {"stream": "markPrice"})
    assert seen is not None and seen >= 2
    assert seen == client.latency.ws_stats("btcusdt@markPrice").count  # the same samples the engine keeps


def test_bus_counts_fills_and_engine_errors() -> None:
    metrics = make_metrics(dry_run=True)
    bus = EventBus()
    unsubscribe = watch_bus(bus, metrics)
    bus.publish(OrderFilled(pair=BTC, side="long", purpose="entry", client_order_id="bsm-1-entry-0",
                            amount=Decimal(1), price=Decimal(100)))
    bus.publish(EngineError(message="boom", where="live.desk"))
    unsubscribe()
    bus.publish(EngineError(message="after", where="live.desk"))
    assert _value(metrics, "bsmart_order_fills_total", {"purpose": "entry"}) == 1
    assert _value(metrics, "bsmart_engine_errors_total", {"where": "live.desk"}) == 1


def test_state_is_exported_only_once_measured() -> None:
    metrics = make_metrics(dry_run=True)
    names = exposed_names(metrics.registry)
    assert {"bsmart_margin_ratio", "bsmart_win_rate", "bsmart_trades_closed_total"} <= names  # declared ...
    assert _value(metrics, "bsmart_margin_ratio") is None  # ... but no value before the first sample
    metrics.state.sample = StateSample(taken_at=1.0, engine_running=True, entries_paused=False, open_positions=2,
                                       equity=1010.0, margin_ratio=0.05, closed_trades=4, won_trades=3,
                                       heavy_jobs={"hyperopt": 1}, heavy_job_slots=2)
    assert _value(metrics, "bsmart_margin_ratio") == 0.05
    assert _value(metrics, "bsmart_win_rate") == 0.75
    assert _value(metrics, "bsmart_trades_closed_total") == 4
    assert _value(metrics, "bsmart_heavy_jobs", {"kind": "hyperopt"}) == 1
    assert _value(metrics, "bsmart_heavy_jobs", {"kind": "backtest"}) == 0
    assert _value(metrics, "bsmart_wallet_balance_usdt") is None  # not read in that sample: absent, not 0


async def test_running_main_job_exports_engine_account_and_process(write_config, isolated: Path) -> None:
    # Tiers far above any round trip a loaded CI machine shows at start-up (one request over 100 ms there made the
    # default's safe mode): this test is about what is exported; tests/exchange/test_weights_latency.py is about the tiers.
    settings = load_settings(write_config({"metrics": {"port": 0}, "risk": {"latency": {
        "safe_ms": 10_000, "no_entries_ms": 20_000, "emergency_ms": 30_000}}}), environ={})
    stop = asyncio.Event()
    ready: dict[str, object] = {}

    def on_ready(runtime, info: dict[str, object]) -> None:
        assert runtime.research.backtest_jobs.max_jobs == 2  # the heavy-job runner exists now (made on first use)
        ready.update(info)

    task = asyncio.create_task(run_main_job(settings, stop, heartbeat_s=0.2, sample_s=0.2, on_ready=on_ready))
    try:
        await _until(lambda: bool(ready) or task.done(), timeout=60)

        def scrape() -> dict[str, float]:
            text = urllib.request.urlopen(str(ready["metrics"]), timeout=5).read().decode()
            return {f"{s.name}{sorted(s.labels.items()) if s.labels else ''}": s.value
                    for family in text_string_to_metric_families(text) for s in family.samples}

        values: dict[str, float] = {}
        for _ in range(100):  # the first sample is taken at start; the engine may come up just after it
            values = await asyncio.to_thread(scrape)
            if (values.get("bsmart_equity_usdt") and values.get("bsmart_engine_running") == 1
                    and values.get("bsmart_heavy_job_slots")):
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0
    assert values["bsmart_equity_usdt"] == pytest.approx(float(settings.simulator.balance))
    assert values["bsmart_engine_running"] == 1 and values["bsmart_open_positions"] == 0
    assert values["bsmart_margin_ratio"] == 0  # flat: no maintenance margin
    assert values["bsmart_latency_tier"] == 0
    assert values["bsmart_api_weight_used"] > 0
    assert values["bsmart_process_resident_memory_bytes"] > 10 * 2**20
    assert values["bsmart_process_cpu_seconds_total"] > 0
    assert values["bsmart_heavy_jobs[('kind', 'backtest')]"] == 0 and values["bsmart_heavy_job_slots"] == 2
    assert any(k.startswith("bsmart_rest_latency_seconds_count[('endpoint', 'GET /fapi/") for k in values)
