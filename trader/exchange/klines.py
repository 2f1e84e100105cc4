"""Closed 1m candles of every traded pair from one raw websocket (Binance's combined kline streams).

The live engine's candle path: every closed 1m candle of each pair reaches ``on_closed`` exactly once and in order,
as ``CandleStream`` guarantees, but read from the socket's own messages instead of ccxt.pro's generic
``watch_ohlcv`` (issue 16: ccxt's handler spent ~0.2 ms of the engine loop's GIL per kline, and every open-candle
update several times a second went through it too). A closed kline in Binance's compact form is read off the text by
one strict regex (any other shape is decoded once with ``json``); an open-candle update is read off the text too
(its symbol and minute), only moves the pair's "latest minute seen" and is otherwise dropped.

When a candle is closed: Binance marks its final update ``"x": true`` and, on one socket, sends it before the next
minute's first update. So a closed message for the minute after the last delivered one is delivered at once; any
minute that did not arrive that way — the socket dropped, a message was lost, a reconnect happened — is fetched over
REST before anything newer is delivered:

- a closed (or open) message further on than the next expected minute: REST for the minutes in between first;
- after every (re)connect: REST up to the exchange's clock for every pair (what happened while no socket was open);
- no message for ``heartbeat_s``: REST up to the exchange's clock (a quiet or dead socket; aiohttp's ping/pong
  heartbeat closes a dead one, and the loop reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping

import aiohttp

from trader.config.pairs import exchange_symbol
from trader.exchange.client import ExchangeClient
from trader.exchange.errors import ExchangeError
from trader.exchange.streams import Candle, Handler, StreamOptions, _call

log = logging.getLogger(__name__)
MINUTE = 60_000
# An open-candle update, read off the raw text: only its symbol and minute matter. In a minute's burst each pair's
# close is followed by its next minute's first update, so the pairs ahead of the one that orders cost their updates
# too; decoding one in full cost ~9 µs of the engine loop against ~2 µs for these. Anything unexpected (other
# spacing, another interval, a missing key) is decoded in full.
_OPEN_MARKS = ('"x":false', '"e":"kline"', '"i":"1m"')
_SYMBOL = re.compile(r'"s":"([A-Z0-9]+)"')
_OPEN_TIME = re.compile(r'"t":(\d+)[,}]')
# A candle's final update as Binance writes it (its documented field order, compact): the fields a candle needs,
# read without building the event's dicts (the minute's first message paid ~30 µs for json.loads on cold caches).
# Any other shape (spacing, order, another interval, a number in another notation) is decoded in full.
_NUM = r'"(\d+(?:\.\d+)?)"'
_CLOSED = re.compile(
    r'"e":"kline","E":(\d+),"s":"([A-Z0-9]+)","k":\{"t":(\d+),"T":\d+,"s":"\2","i":"1m","f":-?\d+,"L":-?\d+,'
    rf'"o":{_NUM},"c":{_NUM},"h":{_NUM},"l":{_NUM},"v":{_NUM},"n":\d+,"x":true,')


class KlineStreams:
    """One socket, every pair's ``<symbol>@kline_1m``; ``on_closed[pair](candle)`` is awaited for each closed candle
    of that pair, once, oldest first. ``last_closed[pair]`` is the open time of the last candle the caller already
    has (its history); None means "start from the first candle the socket shows"."""

    def __init__(self, client: ExchangeClient, on_closed: Mapping[str, Handler], *,
                 last_closed: Mapping[str, int | None] | None = None, options: StreamOptions | None = None) -> None:
        if not on_closed:
            raise ValueError("KlineStreams needs at least one pair")
        self.client = client
        self.on_closed = dict(on_closed)
        self.options = options or StreamOptions()
        self.last_closed: dict[str, int | None] = {p: (last_closed or {}).get(p) for p in self.on_closed}
        self._pairs = {exchange_symbol(p): p for p in self.on_closed}  # BTCUSDT -> BTC/USDT:USDT
        self.reconnects = 0
        self.resyncs = 0
        self.messages = 0
        self.connected = asyncio.Event()  # set at the first message from the socket

    def url(self) -> str:
        base = str(self.client.ccxt.urls["api"]["ws"]["linear"])
        if base.endswith("/ws"):
            base = base[: -len("/ws")]
        streams = "/".join(f"{s.lower()}@kline_1m" for s in self._pairs)
        return f"{base.rstrip('/')}/market/stream?streams={streams}"

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        opened = False
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    async with session.ws_connect(self.url(), heartbeat=self.options.heartbeat_s,
                                                  max_msg_size=1 << 20) as ws:
                        if opened:
                            self.reconnects += 1
                            # What closed while no socket was open is only on REST.
                            await self.resync_all()
                        opened = True
                        failures = 0
                        await self._session(ws, stop)
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ExchangeError) as exc:
                    failures += 1
                    delay = self.options.backoff.delay(min(failures, 8))
                    log.warning("kline stream dropped (%s); reconnecting in %.1fs", exc or type(exc).__name__, delay)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        heartbeat = self.options.heartbeat_s
        loop = asyncio.get_running_loop()
        heard = loop.time()
        seen = self.messages  # kline messages by the last timeout: more since then means the stream spoke
        # Messages aiohttp has already read off the socket (a minute's closes come in one burst) are taken without
        # the receive timeout: setting one up costs more than the message, on every candle's way to its order.
        # The timeout only matters while waiting, and is set then. (aiohttp's queue is internal: without it, always.)
        buffered = getattr(getattr(ws, "_reader", None), "_buffer", None)
        timeout = min(1.0, heartbeat)
        while not stop.is_set():
            try:
                msg = await (ws.receive() if buffered else ws.receive(timeout=timeout))
            except asyncio.TimeoutError:
                if self.messages != seen:
                    # Counted per message, stamped here: a clock read per message cost two calls on every candle's
                    # way to its order, and a stream is judged silent a timeout (at most 1 s) later at worst.
                    seen, heard = self.messages, loop.time()
                elif loop.time() - heard > heartbeat:
                    log.warning("kline stream silent for %.0fs; resyncing over REST", heartbeat)
                    heard = loop.time()
                    await self.resync_all()
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self.on_text(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.ERROR):
                raise ConnectionError("kline socket closed")

    async def on_text(self, text: str) -> None:
        """One message from the socket (combined-stream wrapped or raw)."""
        if _OPEN_MARKS[0] in text and _OPEN_MARKS[1] in text and _OPEN_MARKS[2] in text:
            s = _SYMBOL.search(text)
            t = _OPEN_TIME.search(text)
            pair = self._pairs.get(s.group(1)) if s is not None else None
            if pair is not None and t is not None:
                self.messages += 1
                self.connected.set()
                await self._open_minute(pair, int(t.group(1)))
                return
        m = _CLOSED.search(text)
        if m is not None:
            pair = self._pairs.get(m.group(2))
            if pair is not None:
                self.messages += 1
                self.connected.set()
                event_ms, t = int(m.group(1)), int(m.group(3))
                # What an observer of the client reads of a final update (trader/monitoring/exchange_meter.py).
                self.client.kline_event({"e": "kline", "E": event_ms, "s": m.group(2),
                                         "k": {"t": t, "s": m.group(2), "i": "1m", "x": True}})
                o, c, h, low, v = (float(x) for x in m.group(4, 5, 6, 7, 8))
                await self._closed(pair, t, o, h, low, c, v)
                return
        event = json.loads(text)
        if not isinstance(event, dict):
            return
        data = event.get("data", event)
        if not isinstance(data, dict) or data.get("e") != "kline":
            return
        k = data.get("k") or {}
        pair = self._pairs.get(str(k.get("s") or data.get("s") or ""))
        if pair is None or k.get("i", "1m") != "1m":
            return
        self.messages += 1
        self.connected.set()
        t = int(k["t"])
        if not k.get("x"):
            await self._open_minute(pair, t)
            return
        self.client.kline_event(data)  # the final update (the meter times candle → order from it)
        await self._closed(pair, t, float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]))

    async def _closed(self, pair: str, t: int, o: float, h: float, low: float, c: float, v: float) -> None:
        """The final update of minute ``t``: delivered once, after any minute before it the socket did not show."""
        last = self.last_closed[pair]
        if last is not None:
            if t <= last:
                return
            if t > last + MINUTE:
                await self.resync(pair, until_ms=t)
                last = self.last_closed[pair]
                if last is not None and t <= last:
                    return
        await self._deliver(pair, [Candle(pair, t, o, h, low, c, v)])

    async def _open_minute(self, pair: str, t: int) -> None:
        """The open candle of minute ``t``: only its minute matters (a close that never came is fetched over REST)."""
        last = self.last_closed[pair]
        if last is None:
            self.last_closed[pair] = t - MINUTE
        elif t - MINUTE > last:
            await self.resync(pair, until_ms=t)

    async def _deliver(self, pair: str, candles: list[Candle]) -> None:
        handler = self.on_closed[pair]
        for candle in candles:
            last = self.last_closed[pair]
            if last is not None and candle.timestamp <= last:
                continue
            self.last_closed[pair] = candle.timestamp
            await _call(handler, candle)

    async def resync(self, pair: str, until_ms: int | None = None) -> int:
        """Closed candles of ``pair`` after the last delivered one, before ``until_ms`` (or the exchange's clock),
        over REST; returns how many were delivered."""
        if self.last_closed[pair] is None:
            return 0
        self.resyncs += 1
        now = await self.client.fetch_time()
        limit_ms = min(until_ms, now) if until_ms is not None else now
        delivered = 0
        since = (self.last_closed[pair] or 0) + MINUTE
        while since + MINUTE <= limit_ms:
            rows = await self.client.fetch_ohlcv(pair, "1m", since, 1000)
            rows = [r for r in rows if int(r[0]) >= since and int(r[0]) + MINUTE <= limit_ms]
            if not rows:
                break
            before = self.last_closed[pair] or 0
            await self._deliver(pair, [Candle.from_row(pair, r) for r in rows])
            delivered += sum(1 for r in rows if int(r[0]) > before)
            since = int(rows[-1][0]) + MINUTE
        if delivered:
            log.info("%s: %d missed candles fetched over REST", pair, delivered)
        return delivered

    async def resync_all(self) -> None:
        for pair in self.on_closed:
            try:
                await self.resync(pair)
            except ExchangeError as exc:
                log.warning("%s resync failed: %s", pair, exc)
