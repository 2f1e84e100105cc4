"""The Prometheus metrics ``bsmart run`` exports, on a registry of our own (no process-wide default registry: tests
run many instances). Every name is listed in README.md (Monitoring).

What is measured where:
- event-driven series (REST round trips, websocket lag, candle → order, orders, errors, fills) are observed as they
  happen, by ``trader.monitoring.exchange_meter`` (each exchange client) and ``sampler.watch_bus`` (engine events);
- the exchange side's current state (latency tier, request weight) is read from the live clients at each scrape;
- account, trades, engine and heavy-job figures come from ``sampler.sample_state`` every few seconds and are exported
  only once measured: a gauge nobody has set is not a zero, so those families stay empty until the first sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from trader import __version__
from trader.monitoring.health import HealthSnapshot

# Bucket bounds include the latency tier thresholds (100 / 500 / 1000 ms) so a tier change shows in the histogram.
REST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WS_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The engine's own path is a few milliseconds (bench/live_latency.py); the upper buckets catch a stalled engine.
CANDLE_TO_ORDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class StateSample:
    """One reading of the service's state; None means "could not be read this time", never zero."""

    taken_at: float  # unix seconds
    account_read_at: float | None = None  # last successful balance read (unix seconds), carried across failures
    engine_running: bool = False
    entries_paused: bool = False
    open_positions: int | None = None
    wallet: float | None = None
    equity: float | None = None  # margin balance: wallet + unrealised PnL
    unrealized_pnl: float | None = None
    margin_ratio: float | None = None  # maintenance margin / margin balance (Binance liquidates at 1)
    closed_trades: int | None = None
    won_trades: int | None = None
    realized_pnl: float | None = None  # net of fees and funding, all closed trades
    heavy_jobs: dict[str, int] | None = None  # running worker jobs by kind
    heavy_job_slots: int | None = None


class StateCollector(Collector):
    """Exports the latest ``StateSample``. Families are always declared (so names are discoverable); a value
    appears only when it was measured."""

    def __init__(self) -> None:
        self.sample: StateSample | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.sample

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc)
            if value is not None:
                family.add_metric([], float(value))
            return family

        def counter(name: str, doc: str, value: float | None) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc)
            if value is not None:
                family.add_metric([], float(value))
            return family

        yield gauge("bsmart_account_read_timestamp_seconds", "When the balance was last read from the exchange "
                    "(unix time); an old value means the exchange or the service stopped answering",
                    s and s.account_read_at)
        yield gauge("bsmart_engine_running", "1 while the live engine runs", s and int(s.engine_running))
        yield gauge("bsmart_entries_paused", "1 while new entries are paused (by a user or the latency guard)",
                    s and int(s.entries_paused))
        yield gauge("bsmart_open_positions", "Open positions on the account", s and s.open_positions)
        yield gauge("bsmart_wallet_balance_usdt", "Wallet balance (USDT)", s and s.wallet)
        yield gauge("bsmart_equity_usdt", "Margin balance: wallet plus unrealised PnL (USDT)", s and s.equity)
        yield gauge("bsmart_unrealized_pnl_usdt", "Unrealised PnL of open positions (USDT)", s and s.unrealized_pnl)
        yield gauge("bsmart_margin_ratio", "Maintenance margin / margin balance; Binance liquidates at 1",
                    s and s.margin_ratio)
        yield counter("bsmart_trades_closed", "Closed trades (live and dry-run, not backtests)", s and s.closed_trades)
        yield counter("bsmart_trades_won", "Closed trades with a positive net result", s and s.won_trades)
        win_rate = None
        if s is not None and s.closed_trades and s.won_trades is not None:
            win_rate = s.won_trades / s.closed_trades
        yield gauge("bsmart_win_rate", "Won / closed trades (absent before the first closed trade)", win_rate)
        yield gauge("bsmart_realized_pnl_usdt", "Net PnL of all closed trades after fees and funding (USDT)",
                    s and s.realized_pnl)
        jobs = GaugeMetricFamily("bsmart_heavy_jobs", "Backtest and hyperopt worker processes running, by kind",
                                 labels=["kind"])
        if s is not None and s.heavy_jobs is not None:
            for kind in ("backtest", "hyperopt"):
                jobs.add_metric([kind], s.heavy_jobs.get(kind, 0))
        yield jobs
        yield gauge("bsmart_heavy_job_slots", "Heavy jobs the machine admits at once (more are refused)",
                    s and s.heavy_job_slots)

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())


@dataclass
class Metrics:
    registry: CollectorRegistry
    up: Gauge
    uptime: Gauge
    db_latency: Gauge
    disk_free: Gauge
    rest_latency: Histogram
    ws_lag: Histogram
    candle_to_order: Histogram
    orders: Counter
    fills: Counter
    exchange_errors: Counter
    engine_errors: Counter
    state: StateCollector
    clients: Any = field(default=None)  # exchange_meter.ClientWatch; typed loosely to keep the import one-way

    def observe(self, health: HealthSnapshot) -> None:
        self.up.set(1 if health.ok else 0)
        self.uptime.set(health.uptime_s)
        self.db_latency.set((health.db_latency_ms or 0.0) / 1000)
        self.disk_free.set(health.disk_free_bytes)


def make_metrics(dry_run: bool) -> Metrics:
    from trader.monitoring.exchange_meter import ClientWatch  # it imports this module's types

    registry = CollectorRegistry()
    info = Info("bsmart", "binance-smart build and mode", registry=registry)
    info.info({"version": __version__, "mode": "dry_run" if dry_run else "live"})
    ProcessCollector(namespace="bsmart", registry=registry)  # bsmart_process_cpu_seconds_total, ..._resident_memory_bytes
    state = StateCollector()
    registry.register(state)
    metrics = Metrics(
        registry=registry,
        up=Gauge("bsmart_healthy", "1 when the database answers and disk space is sufficient", registry=registry),
        uptime=Gauge("bsmart_uptime_seconds", "Seconds since the process started", registry=registry),
        db_latency=Gauge("bsmart_db_latency_seconds", "Round trip of a trivial database query", registry=registry),
        disk_free=Gauge("bsmart_disk_free_bytes", "Free bytes on the user_data volume", registry=registry),
        rest_latency=Histogram("bsmart_rest_latency_seconds", "REST round trip to the exchange, by endpoint "
                               "(method and path)", ["endpoint"], buckets=REST_BUCKETS, registry=registry),
        ws_lag=Histogram("bsmart_ws_lag_seconds", "Websocket event time to receipt, by event type (only against "
                         "an exchange whose clock is wall time)", ["stream"], buckets=WS_LAG_BUCKETS,
                         registry=registry),
        candle_to_order=Histogram("bsmart_candle_to_order_seconds", "Closed 1m candle received on the websocket to "
                                  "the strategy's entry or exit order sent", buckets=CANDLE_TO_ORDER_BUCKETS,
                                  registry=registry),
        orders=Counter("bsmart_orders", "Orders sent, by exchange order type, purpose and outcome (accepted, or the "
                       "error class; unknown: the answer was lost and the order was looked up)",
                       ["type", "purpose", "outcome"], registry=registry),
        fills=Counter("bsmart_order_fills", "Order fills reported by the engine, by purpose", ["purpose"],
                      registry=registry),
        exchange_errors=Counter("bsmart_exchange_errors", "Failed exchange calls by error class (temporary, "
                                "parameter, permission, account)", ["class"], registry=registry),
        engine_errors=Counter("bsmart_engine_errors", "Errors the engine reported, by where they happened",
                              ["where"], registry=registry),
        state=state,
    )
    metrics.clients = ClientWatch()
    registry.register(metrics.clients)
    return metrics


def serve_metrics(metrics: Metrics, host: str, port: int) -> tuple[Any, int]:
    """Start the /metrics HTTP endpoint on its own thread; returns (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, server.server_address[1]


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a scrape of ``registry`` can carry (as PromQL sees them), including families that have no
    sample yet: a labelled counter that never counted still has its ``_total``."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "info": ("_info",), "gauge": ("",),
                "unknown": ("",), "stateset": ("",), "gaugehistogram": ("_bucket", "_gcount", "_gsum")}
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
