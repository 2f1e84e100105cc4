"""Market and account streams, kept alive: heartbeat, reconnect, and REST resync after any gap.

- Closed 1m candles per pair (ccxt.pro ``watch_ohlcv``). A candle counts as closed when a later one appears;
  any minute the stream skipped (a drop, a reconnect, a quiet socket) is fetched over REST before newer candles
  are delivered, so the engine sees every closed candle exactly once and in order.
- Mark price and funding (ccxt.pro ``watch_mark_price``), with websocket delay measured from the event time.
- The user data stream, on a socket of its own (ccxt.pro's ``watch_orders`` delivered late what arrived between
  two calls); after every (re)connect the engine is told to reconcile orders and positions over REST, because
  events sent while disconnected are lost.
- Depth: a raw diff stream feeding ``LocalOrderBook`` by Binance's snapshot + diff procedure (ccxt.pro hides the
  update ids that the procedure checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt

from trader.config.pairs import exchange_symbol
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.exchange.models import OrderState
from trader.exchange.orderbook import LocalOrderBook, OutOfSync

log = logging.getLogger(__name__)
MINUTE = 60_000
Handler = Callable[..., Awaitable[None] | None]


async def _call(handler: Handler, *args: Any) -> None:
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


@dataclass(frozen=True)
class Candle:
    pair: str
    timestamp: int  # open time, ms UTC
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def from_row(cls, pair: str, row: list[float]) -> Candle:
        return cls(pair, int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]))


@dataclass
class StreamOptions:
    heartbeat_s: float = 90.0  # no message for this long: the socket is presumed dead; resync over REST
    backoff: BackoffPolicy = BackoffPolicy(attempts=1_000_000, base_s=0.5, cap_s=30.0)


class CandleStream:
    """Delivers every closed 1m candle of one pair exactly once, in order.

    ccxt.pro's ``watch_ohlcv`` returns only the rows updated since the previous call, and a message that arrives
    while nobody awaits it only updates ccxt's kline cache. So the stream reads the tail of that cache, and reads it
    again after ``poll_s`` of silence: a finished candle reaches the engine at most ``poll_s`` late, not after the
    heartbeat's REST resync.
    """

    poll_s = 0.2
    CACHE_TAIL = 8  # anything older is either delivered or a gap that resync fetches

    def __init__(
        self,
        client: ExchangeClient,
        pair: str,
        on_closed: Handler,
        *,
        last_closed_ms: int | None = None,
        options: StreamOptions | None = None,
    ):
        self.client = client
        self.pair = pair
        self.on_closed = on_closed
        self.last_closed_ms = last_closed_ms  # open time of the last candle delivered
        self.options = options or StreamOptions()
        self.reconnects = 0
        self.resyncs = 0
        self.connected = asyncio.Event()  # set at the first message from the socket

    def _forget_cache(self) -> None:
        # After a drop the cache may hold a candle whose final update was lost: it would pass for closed as soon as
        # a newer row appears. Forget it; the REST resync brings the final values.
        cache = (getattr(self.client.ccxt, "ohlcvs", None) or {}).get(self.pair)
        if cache is not None:
            cache.pop("1m", None)

    def _cache(self) -> list[list[float]]:
        cache = (getattr(self.client.ccxt, "ohlcvs", None) or {}).get(self.pair, {}).get("1m")
        return list(cache[-self.CACHE_TAIL:]) if cache else []

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        heard = loop.time()
        while not stop.is_set():
            try:
                rows = await asyncio.wait_for(self.client.ccxt.watch_ohlcv(self.pair, "1m"), timeout=self.poll_s)
                failures = 0
                heard = loop.time()
            except asyncio.TimeoutError:
                cached = self._cache()
                if cached:
                    await self._on_rows(cached)
                if loop.time() - heard > self.options.heartbeat_s:
                    log.warning("%s kline stream silent for %.0fs; resyncing over REST", self.pair,
                                self.options.heartbeat_s)
                    heard = loop.time()
                    await self._safe_resync()
                continue
            except ccxt.NetworkError as exc:
                failures += 1
                self.reconnects += 1
                delay = self.options.backoff.delay(min(failures, 8))
                log.warning("%s kline stream dropped (%s); reconnecting in %.1fs", self.pair, exc, delay)
                self._forget_cache()
                await asyncio.sleep(delay)
                await self._safe_resync()
                continue
            self.connected.set()
            await self._on_rows(self._cache() or rows)

    async def _on_rows(self, rows: list[list[float]]) -> None:
        if not rows:
            return
        newest = int(rows[-1][0])
        # A row is known final only when its successor minute follows it directly: on one socket Binance sends a
        # candle's last update before the next candle's first. After a hole (a reconnect, possibly one ccxt did
        # silently) the row before the hole may be a partial one, so those minutes come from REST instead.
        trusted: list[list[float]] = []
        for row, after in zip(rows, rows[1:], strict=False):
            if int(after[0]) != int(row[0]) + MINUTE:
                break
            trusted.append(row)
        complete = len(trusted) == len(rows) - 1
        if self.last_closed_ms is None:
            # First message: start from the last closed candle the stream shows; history is the caller's business.
            if trusted and complete:
                await self._deliver([Candle.from_row(self.pair, trusted[-1])])
            else:
                self.last_closed_ms = newest - MINUTE
            return
        fresh = [r for r in trusted if int(r[0]) > self.last_closed_ms]
        expected = self.last_closed_ms + MINUTE
        if (fresh and int(fresh[0][0]) > expected) or not complete or (not fresh and newest > expected + MINUTE):
            await self._deliver([Candle.from_row(self.pair, r) for r in fresh if int(r[0]) == expected])
            await self.resync(until_ms=newest)
            return
        await self._deliver([Candle.from_row(self.pair, r) for r in fresh])

    async def _deliver(self, candles: list[Candle]) -> None:
        for candle in candles:
            if self.last_closed_ms is not None and candle.timestamp <= self.last_closed_ms:
                continue
            self.last_closed_ms = candle.timestamp
            await _call(self.on_closed, candle)

    async def resync(self, until_ms: int | None = None) -> int:
        """Fetch closed candles after the last delivered one over REST; returns how many were delivered."""
        if self.last_closed_ms is None:
            return 0
        self.resyncs += 1
        now = await self.client.fetch_time()
        limit_ms = min(until_ms, now) if until_ms is not None else now
        delivered = 0
        since = self.last_closed_ms + MINUTE
        while since + MINUTE <= limit_ms:
            rows = await self.client.fetch_ohlcv(self.pair, "1m", since, 1000)
            rows = [r for r in rows if int(r[0]) >= since and int(r[0]) + MINUTE <= limit_ms]
            if not rows:
                break
            before = self.last_closed_ms
            await self._deliver([Candle.from_row(self.pair, r) for r in rows])
            delivered += sum(1 for r in rows if int(r[0]) > (before or 0))
            since = int(rows[-1][0]) + MINUTE
        if delivered:
            log.info("%s: %d missed candles fetched over REST", self.pair, delivered)
        return delivered

    async def _safe_resync(self) -> None:
        try:
            await self.resync()
        except ExchangeError as exc:
            log.warning("%s resync failed: %s", self.pair, exc)


class MarkPriceStream:
    def __init__(self, client: ExchangeClient, pair: str, on_mark: Handler, options: StreamOptions | None = None):
        self.client, self.pair, self.on_mark = client, pair, on_mark
        self.options = options or StreamOptions(heartbeat_s=30.0)

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        stream = f"{exchange_symbol(self.pair).lower()}@markPrice"
        while not stop.is_set():
            try:
                ticker = await asyncio.wait_for(self.client.ccxt.watch_mark_price(self.pair),
                                                timeout=self.options.heartbeat_s)
                failures = 0
            except (asyncio.TimeoutError, ccxt.NetworkError) as exc:
                failures += 1
                log.warning("%s mark stream: %s; reconnecting", self.pair, type(exc).__name__)
                await asyncio.sleep(self.options.backoff.delay(min(failures, 8)))
                continue
            info = ticker.get("info") or {}
            if "E" in info:
                self.client.latency.record_ws(stream, int(info["E"]))
            mark = ticker.get("markPrice") or info.get("p")
            if mark is not None:
                await _call(self.on_mark, self.pair, Decimal(str(mark)), info)


class AccountStream:
    """The user-data stream, read from its own socket: every order event reaches ``on_orders`` once, in the order
    Binance sent it.

    ccxt.pro's ``watch_orders`` resolves one future per message and keeps whatever arrives between two calls in its
    cache until the *next* message: updates landing while the engine handled the previous one were delivered late
    (minutes, at the next order event) and then applied on top of a resync that had already counted them. A raw
    socket has no such gap: messages wait in the socket's buffer until they are read.

    After every (re)connect ``on_reconnect`` is awaited, because events sent while no socket was open are lost and
    only REST can tell what happened meanwhile. The listen key is kept alive every ``keepalive_s``; an expired key
    (``listenKeyExpired``) or a dead socket (no pong within the heartbeat) means a new key and a new socket.
    """

    KEEPALIVE_S = 20 * 60.0  # Binance keeps a key 60 min after the last keepalive; ccxt renews every 20

    def __init__(
        self,
        client: ExchangeClient,
        on_orders: Handler,
        on_positions: Handler | None = None,
        on_reconnect: Handler | None = None,
        options: StreamOptions | None = None,
        *,
        keepalive_s: float | None = None,
    ):
        self.client = client
        self.on_orders, self.on_positions, self.on_reconnect = on_orders, on_positions, on_reconnect
        self.options = options or StreamOptions(heartbeat_s=30.0)
        self.keepalive_s = keepalive_s or self.KEEPALIVE_S
        self.reconnects = 0
        self.events = 0
        self.connected = asyncio.Event()
        self._symbols: dict[str, str] = {}

    def _url(self, listen_key: str) -> str:
        base = str(self.client.ccxt.urls["api"]["ws"]["linear"])
        if base.endswith("/ws"):
            base = base[: -len("/ws")]
        return f"{base.rstrip('/')}/private/ws?listenKey={listen_key}"

    def _pair(self, symbol: str) -> str | None:
        if not self._symbols:
            self._symbols = {str(m["id"]): str(m["symbol"]) for m in (self.client.ccxt.markets or {}).values()
                             if m.get("swap") and m.get("linear")}
        return self._symbols.get(symbol)

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    listen_key = await self.client.user_stream_key()
                    async with session.ws_connect(self._url(listen_key),
                                                  heartbeat=self.options.heartbeat_s) as ws:
                        if self.connected.is_set():
                            self.reconnects += 1
                        self.connected.set()
                        failures = 0
                        if self.on_reconnect is not None:
                            await _call(self.on_reconnect)
                        await self._session(ws, stop)
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ExchangeError) as exc:
                    failures += 1
                    delay = self.options.backoff.delay(min(failures, 8))
                    log.warning("user data stream dropped (%s); reconnecting in %.1fs and reconciling",
                                exc or type(exc).__name__, delay)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.keepalive_s
        while not stop.is_set():
            if loop.time() >= renew_at:
                await self.client.keep_user_stream_alive()
                renew_at = loop.time() + self.keepalive_s
            try:
                msg = await ws.receive(timeout=min(1.0, self.options.heartbeat_s))
            except asyncio.TimeoutError:
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.ERROR):
                raise ConnectionError("user data socket closed")
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            event = event.get("data", event) if isinstance(event, dict) else {}
            await self._dispatch(event)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("e")
        if "E" in event:
            self.client.latency.record_ws("userData", int(event["E"]))
        if kind in ("ORDER_TRADE_UPDATE", "ALGO_UPDATE"):
            pair = self._pair(str((event.get("o") or {}).get("s") or ""))
            if pair is None:
                return  # a symbol this client does not trade (another contract type on the account)
            self.events += 1
            await _call(self.on_orders, [OrderState.from_user_event(event, pair)])
        elif kind == "ACCOUNT_UPDATE" and self.on_positions is not None:
            await _call(self.on_positions, event)
        elif kind == "listenKeyExpired":
            raise ConnectionError("listen key expired")


class DepthStream:
    """A local order book for one pair from Binance's diff stream, rebuilt from a snapshot whenever it breaks."""

    def __init__(self, client: ExchangeClient, pair: str, ws_base: str, *, on_update: Handler | None = None,
                 options: StreamOptions | None = None, snapshot_limit: int = 1000):
        self.client = client
        self.pair = pair
        self.symbol = exchange_symbol(pair)
        self.url = ws_base.rstrip("/") + "/public/ws"
        self.book = LocalOrderBook(self.symbol)
        self.on_update = on_update
        self.options = options or StreamOptions(heartbeat_s=30.0)
        self.snapshot_limit = snapshot_limit
        self.rebuilds = 0

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    await self._session(session, stop)
                    failures = 0
                except (aiohttp.ClientError, asyncio.TimeoutError, OutOfSync, ExchangeError, ConnectionError) as exc:
                    failures += 1
                    log.warning("%s depth stream: %s; rebuilding", self.pair, exc)
                    await asyncio.sleep(self.options.backoff.delay(min(failures, 8)))

    async def _session(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        stream = f"{self.symbol.lower()}@depth@100ms"
        async with session.ws_connect(self.url, heartbeat=self.options.heartbeat_s) as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": [stream], "id": 1}))
            self.book = LocalOrderBook(self.symbol)
            snapshot_task = asyncio.create_task(self.client.fetch_order_book(self.pair, self.snapshot_limit))
            self.rebuilds += 1
            while not stop.is_set():
                if snapshot_task is not None and snapshot_task.done():
                    self.book.load_snapshot(snapshot_task.result())
                    snapshot_task = None
                    await self._notify()
                try:
                    msg = await ws.receive(timeout=0.5 if snapshot_task else self.options.heartbeat_s)
                except asyncio.TimeoutError:
                    if snapshot_task is None:
                        raise
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    raise ConnectionError("depth socket closed")
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                event = event.get("data", event)
                if event.get("e") != "depthUpdate":
                    continue
                self.client.latency.record_ws(stream, int(event.get("E", time.time() * 1000)))
                self.book.buffer(event)
                if self.book.synced:
                    await self._notify()

    async def _notify(self) -> None:
        if self.on_update is not None and self.book.synced:
            await _call(self.on_update, self.book)
