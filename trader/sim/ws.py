"""Websocket streams: market streams (kline, markPrice, depth, bookTicker) and the user data stream.

Paths as Binance routes them since 2026 and as ccxt.pro uses them: ``/<public|market|private>/ws[/<anything>]``
(raw, SUBSCRIBE messages), ``/<category>/stream?streams=a/b`` (combined, wrapped events), the legacy ``/ws/<stream>``
and user data at ``/private/ws?listenKey=K`` or ``/private/ws/K``. As at Binance, a stream subscribed on the wrong
category's connection silently receives nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from trader.data.timeframes import timeframe_ms
from trader.sim.orders import fs
from trader.sim.rest import _ticker as rest_ticker

if TYPE_CHECKING:
    from trader.sim.server import SimulatorServer

PUBLIC_KINDS = ("depth", "bookTicker")


def stream_category(stream: str) -> str:
    kind = stream.split("@")[1] if "@" in stream else ""
    return "public" if kind.startswith(PUBLIC_KINDS) else "market"


@dataclass(eq=False)
class Conn:
    ws: web.WebSocketResponse
    category: str  # public | market | private | "" (legacy: everything)
    combined: bool = False
    listen_key: str | None = None
    streams: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # stream → (bar open / last push time, sim time)
    opened: float = field(default_factory=time.monotonic)

    def accepts(self, stream: str) -> bool:
        return self.category in ("", stream_category(stream))

    def send(self, stream: str | None, data: dict) -> None:
        self.queue.put_nowait({"stream": stream, "data": data} if self.combined and stream else data)


class StreamHub:
    def __init__(self, sim: SimulatorServer):
        self.sim = sim
        self.conns: set[Conn] = set()
        self._last_drop = time.monotonic()

    # ---- connections --------------------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        sim = self.sim
        if sim.faults.in_maintenance(sim.clock.now_ms()):
            return web.Response(status=503, text="Service Unavailable.")
        parts = [p for p in request.path.split("/") if p]
        category = parts[0] if parts and parts[0] in ("public", "market", "private") else ""
        rest = parts[1:] if category else parts
        combined = bool(rest) and rest[0] == "stream"
        tail = rest[1] if len(rest) > 1 else None
        listen_key = request.query.get("listenKey")
        streams: list[str] = []
        if combined and request.query.get("streams"):
            streams = request.query["streams"].split("/")
        elif tail and "@" in tail or tail and tail.startswith("!"):
            streams = [tail]
        elif tail and tail in sim.listen_keys:
            listen_key = tail
        if listen_key is not None and listen_key not in sim.listen_keys:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, category, combined, listen_key)
        for s in streams:
            self._subscribe(conn, s)
        self.conns.add(conn)
        writer = asyncio.ensure_future(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_message(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return ws

    async def _writer(self, conn: Conn) -> None:
        while True:
            item = await conn.queue.get()
            if item is None:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY)
                return
            try:
                await conn.ws.send_str(json.dumps(item, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                return

    def _subscribe(self, conn: Conn, stream: str) -> None:
        conn.streams.add(stream)
        conn.sent.pop(stream, None)
        if "@depth" in stream and "@depth5" not in stream and "@depth10" not in stream and "@depth20" not in stream:
            self.sim.depth_subscribers_changed()

    def _on_message(self, conn: Conn, text: str) -> None:
        try:
            msg = json.loads(text)
            method = msg.get("method")
            req_id = msg.get("id")
            params = msg.get("params") or []
        except (ValueError, AttributeError):
            conn.queue.put_nowait({"error": {"code": 3, "msg": "Invalid JSON"}})
            return
        if method == "SUBSCRIBE":
            for s in params:
                self._subscribe(conn, str(s))
            conn.queue.put_nowait({"result": None, "id": req_id})
        elif method == "UNSUBSCRIBE":
            for s in params:
                conn.streams.discard(str(s))
            conn.queue.put_nowait({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.queue.put_nowait({"result": sorted(conn.streams), "id": req_id})
        else:
            conn.queue.put_nowait({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                   "id": req_id})

    def drop_all(self, private: bool = True) -> int:
        n = 0
        for c in list(self.conns):
            if private or c.listen_key is None:
                c.queue.put_nowait(None)
                self.conns.discard(c)
                n += 1
        return n

    def close_user_streams(self, listen_key: str) -> None:
        for c in list(self.conns):
            if c.listen_key == listen_key:
                c.queue.put_nowait(None)
                self.conns.discard(c)

    # ---- user data ----------------------------------------------------------------------------------------------
    def on_user_event(self, event: dict) -> None:
        for c in self.conns:
            if c.listen_key is not None:
                c.send(c.listen_key, event)

    def on_depth_diff(self, symbol: str, event: dict) -> None:
        low = symbol.lower()
        for c in self.conns:
            for s in c.streams:
                if s.startswith(low + "@depth@") or s == low + "@depth":
                    if c.accepts(s):
                        c.send(s, event)

    # ---- periodic pushes ------------------------------------------------------------------------------------------
    def push(self) -> None:
        sim = self.sim
        now = sim.clock.now_ms()
        if sim.faults.ws_drop_every_s > 0 and time.monotonic() - self._last_drop >= sim.faults.ws_drop_every_s:
            self._last_drop = time.monotonic()
            self.drop_all()
        if sim.faults.in_maintenance(now):
            self.drop_all()
            return
        wall = time.time()
        for k in [k for k, exp in sim.listen_keys.items() if exp <= wall]:
            del sim.listen_keys[k]  # not kept alive within 60 minutes
        for c in list(self.conns):
            if c.listen_key is not None and c.listen_key not in sim.listen_keys:
                c.send(c.listen_key, {"e": "listenKeyExpired", "E": now, "listenKey": c.listen_key})
                c.queue.put_nowait(None)
                self.conns.discard(c)
                continue
            for s in list(c.streams):
                if c.accepts(s):
                    self._push_stream(c, s, now)

    def _push_stream(self, c: Conn, stream: str, now: int) -> None:
        sim = self.sim
        ex = sim.exchange
        name, _, kind = stream.partition("@")
        sym = name.upper()
        if stream.startswith("!markPrice@arr"):
            period = 1000 if stream.endswith("@1s") else 3000
            last = c.sent.get(stream)
            if last is None or now - last[1] >= period:
                c.sent[stream] = (0, now)
                c.send(stream, [self._mark_event(s, now) for s in ex.data])  # type: ignore[arg-type]
            return
        if sym not in ex.data:
            return
        if kind.startswith("kline_"):
            interval = kind[len("kline_"):]
            try:
                step = timeframe_ms(interval)
                if step % ex.data[sym].bar_ms:
                    return
            except ValueError:
                return
            last = c.sent.get(stream)
            if last is not None and last[1] == now:
                return
            cur_open = now // step * step
            if last is not None and last[0] < cur_open:
                # Every bar that closed since the last push goes out final (x=true), at most the last ten.
                since = max(last[0], cur_open - 10 * step)
                for row in ex.data[sym].klines(interval, cur_open - 1, since, cur_open - 1, 10):
                    c.send(stream, self._kline_event(sym, interval, step, row, True, now))
            rows = ex.data[sym].klines(interval, now, cur_open, cur_open, 1)
            if rows:
                c.send(stream, self._kline_event(sym, interval, step, rows[0], False, now))
            c.sent[stream] = (cur_open, now)
        elif kind.startswith("markPrice"):
            period = 1000 if kind.endswith("@1s") else 3000
            last = c.sent.get(stream)
            if last is None or now - last[1] >= period:
                c.sent[stream] = (0, now)
                c.send(stream, self._mark_event(sym, now))
        elif kind in ("ticker", "miniTicker"):
            last = c.sent.get(stream)
            if last is None or now - last[1] >= 1000:
                c.sent[stream] = (0, now)
                t = rest_ticker(sim, sym, now)
                event = {"e": "24hrTicker", "E": now, "s": sym, "p": t["priceChange"], "P": t["priceChangePercent"],
                         "w": t["weightedAvgPrice"], "c": t["lastPrice"], "Q": t["lastQty"], "o": t["openPrice"],
                         "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"],
                         "O": t["openTime"], "C": t["closeTime"], "F": 0, "L": 0, "n": 0}
                if kind == "miniTicker":
                    event = {k: event[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}
                    event = {"e": "24hrMiniTicker", **event}
                c.send(stream, event)
        elif kind.startswith("bookTicker"):
            last = c.sent.get(stream)
            if last is None or last[1] != now:
                c.sent[stream] = (0, now)
                b = ex.book(sym)
                c.send(stream, {"e": "bookTicker", "u": sim.depth_feed(sym).last_id, "s": sym,
                                "b": fs(b.bids[0][0]), "B": fs(b.bids[0][1]), "a": fs(b.asks[0][0]),
                                "A": fs(b.asks[0][1]), "T": now, "E": now})
        elif kind[:6] in ("depth5", "depth1", "depth2"):
            levels = int("".join(ch for ch in kind.split("@")[0] if ch.isdigit()))
            last = c.sent.get(stream)
            if last is None or last[1] != now:
                c.sent[stream] = (0, now)
                feed = sim.refresh_depth(sym)
                assert feed.book is not None
                c.send(stream, {"e": "depthUpdate", "E": now, "T": now, "s": sym, "U": feed.last_id,
                                "u": feed.last_id, "pu": feed.last_id - 1,
                                "b": [[fs(p), fs(q)] for p, q in feed.book.bids[:levels]],
                                "a": [[fs(p), fs(q)] for p, q in feed.book.asks[:levels]]})

    def _mark_event(self, sym: str, now: int) -> dict:
        prem = self.sim.premium(sym, now)
        return {"e": "markPriceUpdate", "E": now, "s": sym, "p": prem["markPrice"], "i": prem["indexPrice"],
                "P": prem["estimatedSettlePrice"], "r": prem["lastFundingRate"], "T": prem["nextFundingTime"]}

    def _kline_event(self, sym: str, interval: str, step: int, row: list[float], closed: bool, now: int) -> dict:
        spec = self.sim.exchange.specs[sym]
        t, o, h, low, c, v = row
        return {"e": "kline", "E": now, "s": sym, "k": {
            "t": int(t), "T": int(t) + step - 1, "s": sym, "i": interval, "f": 0, "L": 0,
            "o": fs(spec.round_price(o)), "c": fs(spec.round_price(c)), "h": fs(spec.round_price(h)),
            "l": fs(spec.round_price(low)), "v": f"{v:.3f}", "n": 0, "x": closed, "q": f"{v * c:.2f}",
            "V": "0", "Q": "0", "B": "0"}}
