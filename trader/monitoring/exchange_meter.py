"""Exchange-side metrics, observed from outside the client's logic.

``MeteredExchangeClient`` is the engine's ``ExchangeClient`` with taps on what already passes through it: the
response observer (REST round trip per endpoint), ccxt's websocket message handler (closed candles, kline lag), the
latency monitor's websocket samples, order placement (type, purpose, outcome; candle → order time) and the one
place every failed call becomes an ``ExchangeError`` (errors by class). It changes no behaviour: every tap records
and passes the call on unchanged.

``ClientWatch`` is a collector over the clients that are open right now (the service's and each engine's): at each
scrape it exports the worst latency tier among them and the request weight Binance last reported for this IP.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trader.config.pairs import exchange_symbol
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.errors import NO_CHANGE_NEEDED, ExchangeError
from trader.exchange.latency import LatencyMonitor
from trader.exchange.models import OrderRequest, OrderState
from trader.exchange.order_ids import PURPOSES, is_ours
from trader.monitoring.metrics import Metrics

# Orders a strategy sends because of a bar: only these are timed from the candle (a /forceexit or a flatten is not
# the answer to a candle, and stops and take-profits answer a fill).
DECISION_PURPOSES = frozenset({"entry", "exit"})


def order_purpose(client_order_id: str) -> str:
    """``entry``, ``stop``, ``flat``, … from our deterministic id (``bsm-[run-]trade-purpose-seq``); ``other`` for an
    id we did not make."""
    if not is_ours(client_order_id):
        return "other"
    parts = client_order_id.split("-")
    return parts[-2] if len(parts) >= 4 and parts[-2] in PURPOSES else "other"


class ClientWatch(Collector):
    """The exchange clients open now; weakly held, so a client that was dropped without close() still goes away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[ExchangeClient] = weakref.WeakSet()
        # Latency monitors whose websocket samples are already tapped: one monitor may serve several clients.
        self.tapped_monitors: weakref.WeakSet[LatencyMonitor] = weakref.WeakSet()

    def add(self, client: ExchangeClient) -> None:
        with self._lock:
            self._clients.add(client)

    def discard(self, client: ExchangeClient) -> None:
        with self._lock:
            self._clients.discard(client)

    def open_clients(self) -> list[ExchangeClient]:
        with self._lock:  # the scrape runs on the HTTP server's thread while engines open and close clients
            return list(self._clients)

    def collect(self) -> Iterator[Metric]:
        clients = self.open_clients()
        tier = GaugeMetricFamily("bsmart_latency_tier", "Worst latency tier of the open exchange clients: 0 normal, "
                                 "1 safe (half size), 2 no new entries, 3 emergency")
        used = GaugeMetricFamily("bsmart_api_weight_used", "Request weight used this minute, as the exchange last "
                                 "reported it for this IP")
        limit = GaugeMetricFamily("bsmart_api_weight_limit", "Request weight allowed per minute (from exchangeInfo)")
        if clients:
            # Plain attribute reads: no lock is needed against the clients' loops for a scrape.
            tier.add_metric([], max(int(c.latency.tier) for c in clients))
            used.add_metric([], max(c.gate.used() for c in clients))
            limit.add_metric([], max(c.gate.state.limit for c in clients))
        yield from (tier, used, limit)

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())


def _tap_record_ws(metrics: Metrics, record: Callable[..., None]) -> Callable[..., None]:
    """Websocket lag as the engine already measures it (mark price, user data), into the histogram too."""

    def record_ws(stream: str, event_time_ms: int, received_ms: float | None = None) -> None:
        received = received_ms if received_ms is not None else time.time() * 1000
        # Per-pair stream names (btcusdt@markPrice) become their kind, so the label set stays small.
        kind = stream.split("@", 1)[-1]
        metrics.ws_lag.labels(kind).observe(max(0.0, received - event_time_ms) / 1000)
        record(stream, event_time_ms, received)

    return record_ws


class MeteredExchangeClient(ExchangeClient):
    """An ``ExchangeClient`` that records what passes through it into ``metrics``.

    ``event_times_are_wall_clock``: False against the embedded simulator, whose event times follow its replay clock
    (months in the past, or ahead at 60×); websocket lag is then not measured at all rather than exported wrong.
    """

    def __init__(self, options: ClientOptions, *, metrics: Metrics, event_times_are_wall_clock: bool = True,
                 latency: LatencyMonitor | None = None, **kwargs: Any):
        super().__init__(options, latency=latency, **kwargs)
        self._metrics = metrics
        self._wall_clock = event_times_are_wall_clock
        self._closed_candle_at: dict[str, float] = {}  # exchange symbol -> perf_counter at the closed kline's receipt
        observer = self.ccxt.observer
        self.ccxt.observer = self._tap_response(observer)
        # ccxt reads handle_message when it opens a websocket, so replacing it here (before any socket) sees all.
        self.ccxt.handle_message = self._tap_ws(self.ccxt.handle_message)
        if event_times_are_wall_clock and self.latency not in metrics.clients.tapped_monitors:
            metrics.clients.tapped_monitors.add(self.latency)
            self.latency.record_ws = _tap_record_ws(metrics, self.latency.record_ws)  # type: ignore[method-assign]
        metrics.clients.add(self)

    async def close(self) -> None:
        self._metrics.clients.discard(self)
        await super().close()

    # -- taps -------------------------------------------------------------------------------------------------------
    def _tap_response(self, observer: Callable[..., None] | None) -> Callable[..., None]:
        histogram = self._metrics.rest_latency

        # (endpoint, status, headers, ms, ...): whatever else the observer protocol carries is passed on untouched.
        def observe(endpoint: str, status: int, headers: Mapping[str, str], ms: float, *more: Any) -> None:
            histogram.labels(endpoint).observe(ms / 1000)
            if observer is not None:
                observer(endpoint, status, headers, ms, *more)

        return observe

    def _tap_ws(self, handle: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def handle_message(ws_client: Any, message: Any) -> Any:
            event = message.get("data", message) if isinstance(message, dict) else None  # combined streams wrap
            if isinstance(event, dict) and event.get("e") == "kline":
                self.kline_event(event)
            return handle(ws_client, message)

        return handle_message

    def kline_event(self, event: Mapping[str, Any]) -> None:
        """A kline through ccxt's handler, or a candle's final update on the engine's own socket
        (trader/exchange/klines.py reads open-candle updates off the raw text and does not pass them here)."""
        if (event.get("k") or {}).get("x"):  # the candle's final update: the engine may now decide on it
            self._closed_candle_at[str(event.get("s", ""))] = time.perf_counter()
        if self._wall_clock and "E" in event:
            lag_ms = time.time() * 1000 - int(event["E"])
            self._metrics.ws_lag.labels("kline").observe(max(0.0, lag_ms) / 1000)

    # -- calls ------------------------------------------------------------------------------------------------------
    async def _once(self, *args: Any, **kwargs: Any) -> Any:
        # Every failed call becomes an ExchangeError here, in the base class: count it by class on its way out.
        # The arguments pass through as given (the base class's signature is its own business).
        try:
            return await super()._once(*args, **kwargs)
        except ExchangeError as exc:
            if exc.info.code not in NO_CHANGE_NEEDED:  # "already so" is an answer, as the base class counts it
                self._metrics.exchange_errors.labels(exc.error_class.value).inc()
            raise

    async def create_order(self, request: OrderRequest, **kwargs: Any) -> OrderState:
        purpose = order_purpose(request.client_order_id)
        if purpose in DECISION_PURPOSES:
            received = self._closed_candle_at.pop(exchange_symbol(request.pair), None)
            if received is not None:  # the first decision after a candle closed answers that candle
                self._metrics.candle_to_order.observe(time.perf_counter() - received)
        try:
            state = await super().create_order(request, **kwargs)
        except ExchangeError as exc:
            self._metrics.orders.labels(request.type, purpose,
                                        "unknown" if exc.info.state_unknown else exc.error_class.value).inc()
            raise
        except BaseException:  # cancelled mid-flight (shutdown): neither accepted nor refused
            self._metrics.orders.labels(request.type, purpose, "interrupted").inc()
            raise
        self._metrics.orders.labels(request.type, purpose, "accepted").inc()
        return state
