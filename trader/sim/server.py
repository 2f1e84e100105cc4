"""Composition: data → exchange → REST + websocket + admin on one aiohttp app, plus the clock ticker.

In-process use::

    async with SimulatorServer(SimConfig(port=0, clock_mode="stepped")) as sim:
        sim.rest_url, sim.ws_url          # http://127.0.0.1:<port>, ws://127.0.0.1:<port>/ws
        sim.step(60_000)

or from synchronous code ``with SimulatorThread(cfg) as sim: ...`` (server on its own thread and loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from trader.config.pairs import exchange_symbol, normalize_pair
from trader.data.store import bundled_data_dir
from trader.sim import admin, rest
from trader.sim import state as state_mod
from trader.sim.account import q8
from trader.sim.book import DepthFeed
from trader.sim.brackets import maintenance_margin
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.faults import Faults, flash_crash_path
from trader.sim.market import MINUTE, Clock, ScriptedPath, SymbolData, load_symbol
from trader.sim.matching import Exchange
from trader.sim.orders import fs
from trader.sim.weights import WeightMeter
from trader.sim.ws import StreamHub

log = logging.getLogger(__name__)
T = TypeVar("T")
DAY = 86_400_000
STATE_SAVE_INTERVAL_S = 10.0


@functools.lru_cache(maxsize=32)
def _cached_symbol(data_dir: str, pair: str) -> SymbolData:
    return load_symbol(Path(data_dir), pair)


def load_market(cfg: SimConfig) -> dict[str, SymbolData]:
    data_dir = str(cfg.data_dir or bundled_data_dir())
    out: dict[str, SymbolData] = {}
    for raw in cfg.pairs:
        pair = normalize_pair(raw)
        base = _cached_symbol(data_dir, pair)
        # Arrays are shared between simulators; the script state is per instance.
        out[exchange_symbol(pair)] = dataclasses.replace(base, script=None, mark_script=None, scripted_bars={})
    return out


def default_start(data: dict[str, SymbolData]) -> int:
    """One day after the latest first candle, so klines have history from the first request."""
    first = max(int(d.ts[0]) for d in data.values())
    return (first + DAY) // MINUTE * MINUTE


class SimulatorServer:
    def __init__(self, cfg: SimConfig | None = None, data: dict[str, SymbolData] | None = None):
        """``data`` replaces the candle files (the market mirror builds it from another exchange)."""
        self.cfg = cfg or SimConfig()
        self.data = data if data is not None else load_market(self.cfg)
        start = self.cfg.start_ms if self.cfg.start_ms is not None else default_start(self.data)
        self.clock = Clock(start, self.cfg.clock_mode, self.cfg.speed)
        self.exchange = Exchange(self.cfg, self.data, self.clock)
        self.faults = Faults()
        self.maintenance_notice: dict[str, Any] = {"title": "Scheduled system maintenance", "announce": True}
        self.weights = WeightMeter(self.cfg.weight_limit, self.cfg.ban_after_429s, self.cfg.ban_seconds)
        self.listen_keys: dict[str, float] = {}
        self.hub = StreamHub(self)
        self.feeds = {s: DepthFeed(s) for s in self.data}
        self.exchange.listeners.append(self.hub.on_user_event)
        if self.cfg.state_file is not None and state_mod.load(self.exchange, self.cfg.state_file):
            log.info("state restored from %s at %d", self.cfg.state_file, self.exchange.processed_ms)
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self.port: int = self.cfg.port
        self._depth_dirty = False

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(admin.routes(self))
        handler = rest.make_handler(self)
        for prefix in ("/fapi/", "/sapi/", "/futures/"):
            app.router.add_route("*", prefix + "{tail:.*}", handler)
        for path in ("/ws", "/ws/{tail:.*}", "/stream", "/{category:public|market|private}/ws",
                     "/{category:public|market|private}/ws/{tail:.*}", "/{category:public|market|private}/stream"):
            app.router.add_get(path, self.hub.handle)
        return app

    async def start(self) -> SimulatorServer:
        if self.cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("binding the simulator to %s, not loopback", self.cfg.host)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._ticker = asyncio.ensure_future(self._tick_loop())
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.cfg.state_file is not None:
            state_mod.save(self.exchange, self.cfg.state_file)
        self.hub.drop_all()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/ws"

    async def _tick_loop(self) -> None:
        last_save = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.cfg.tick_interval_s)
            try:
                self.exchange.advance(self.clock.now_ms())
                self.after_request()
                self.hub.push()
                if self.cfg.state_file is not None:
                    now = asyncio.get_running_loop().time()
                    if now - last_save >= STATE_SAVE_INTERVAL_S:
                        state_mod.save(self.exchange, self.cfg.state_file)
                        last_save = now
            except Exception:  # the ticker must survive any one bad tick
                log.exception("simulator tick failed")

    # ---- depth ------------------------------------------------------------------------------------------------
    def depth_feed(self, sym: str) -> DepthFeed:
        return self.feeds[sym]

    def refresh_depth(self, sym: str) -> DepthFeed:
        feed = self.feeds[sym]
        diff = feed.publish(self.exchange.book(sym), self.exchange.processed_ms)
        if diff is not None:
            self.hub.on_depth_diff(sym, diff)
        return feed

    def depth_subscribers_changed(self) -> None:
        self._depth_dirty = True

    def after_request(self) -> None:
        """Publish book changes to diff-depth subscribers (cheap when nobody listens)."""
        wanted = {s.split("@")[0].upper() for c in self.hub.conns for s in c.streams if "@depth" in s}
        for sym in wanted & set(self.feeds):
            self.refresh_depth(sym)

    def premium(self, sym: str, now: int) -> dict[str, Any]:
        return rest._premium(self, sym, now)

    # ---- admin operations ---------------------------------------------------------------------------------------
    def step(self, ms: int) -> int:
        t = self.clock.step(ms)
        self.exchange.advance(t)
        self.after_request()
        self.hub.push()
        return t

    def set_clock(self, mode: str | None = None, speed: float | None = None, time_ms: int | None = None
                  ) -> dict[str, Any]:
        if time_ms is not None:
            if int(time_ms) < self.clock.now_ms():
                raise ValueError("the clock does not run backwards")
            self.step(int(time_ms) - self.clock.now_ms())
        if mode is not None or speed is not None:
            now = self.clock.now_ms()
            self.clock = Clock(now, mode or self.clock.mode, float(speed or self.clock.speed))
            self.exchange.clock = self.clock
        return self.clock_info()

    def clock_info(self) -> dict[str, Any]:
        return {"time_ms": self.clock.now_ms(), "mode": self.clock.mode, "speed": self.clock.speed}

    def _data(self, symbol: str) -> SymbolData:
        return self.data[self.exchange._sym(exchange_symbol(normalize_pair(symbol)) if "/" in symbol else symbol)]

    def script_price(self, symbol: str, points: list[tuple[int, float]], hold: bool = False,
                     absolute: bool = False, target: str = "both") -> dict[str, Any]:
        """Override the price path: ``points`` are (ms from now, price); the path starts from the current value
        at now, so the move from here to the first point is part of it. ``target`` "both" moves the contract
        price (the mark follows it), "mark" moves the mark price alone."""
        if target not in ("both", "mark"):
            raise ValueError("target must be 'both' or 'mark'")
        d = self._data(symbol)
        now = self.exchange.processed_ms
        cur = d.mark(now) if target == "mark" else d.price(now)
        pts = [(t if absolute else now + t, p) for t, p in points]
        if not pts or pts[0][0] > now:
            pts.insert(0, (now, cur))
        path = ScriptedPath(sorted(pts), hold)
        if target == "mark":
            d.mark_script = path
        else:
            d.script = path
        return {"symbol": d.symbol, "points": path.points, "hold": hold, "target": target}

    def set_price(self, symbol: str, price: float, target: str = "both") -> dict[str, Any]:
        """Hold ``price`` from 1 ms from now until cleared (contract and mark, or the mark alone)."""
        return self.script_price(symbol, [(1, price)], hold=True, target=target)

    def clear_price(self, symbol: str) -> dict[str, Any]:
        d = self._data(symbol)
        d.script = None
        d.mark_script = None
        return {"symbol": d.symbol, "script": None}

    def flash_crash(self, symbol: str, drop_pct: float, duration_ms: int, rebound_pct: float = 100.0
                    ) -> dict[str, Any]:
        d = self._data(symbol)
        now = self.exchange.processed_ms
        path = flash_crash_path(now, d.price(now), drop_pct, duration_ms, rebound_pct)
        return self.script_price(symbol, path, hold=rebound_pct != 100.0, absolute=True)

    def set_faults(self, values: dict[str, Any]) -> dict[str, Any]:
        self.faults.update(values)
        return self.faults.as_dict()

    def set_book(self, values: dict[str, Any]) -> dict[str, Any]:
        """The book's shape for every symbol, or with ``symbol`` for that one (``reset: true`` drops its own)."""
        values = dict(values)
        symbol = values.pop("symbol", None)
        if symbol is None:
            self.cfg.book.update(values)
            return dataclasses.asdict(self.cfg.book)
        sym = self._data(str(symbol)).symbol
        if values.pop("reset", False):
            self.cfg.book_by_symbol.pop(sym, None)
            return {"symbol": sym, **dataclasses.asdict(self.cfg.book)}
        shape = self.cfg.book_by_symbol.get(sym) or dataclasses.replace(self.cfg.book)
        shape.update(values)
        self.cfg.book_by_symbol[sym] = shape
        return {"symbol": sym, **dataclasses.asdict(shape)}

    def schedule_maintenance(self, values: dict[str, Any]) -> dict[str, Any]:
        """One maintenance window on the replay clock: ``start_ms`` or ``in_s`` (seconds from now), and
        ``end_ms`` or ``duration_s``; ``announce`` (default true) publishes it at GET /bsmart/v1/maintenance, as
        Binance announces scheduled maintenance; false makes it an unannounced outage."""
        now = self.clock.now_ms()
        if "start_ms" in values:
            start = int(values["start_ms"])
        else:
            start = now + int(float(values.get("in_s", 0)) * 1000)
        if "end_ms" in values:
            end = int(values["end_ms"])
        elif "duration_s" in values:
            end = start + int(float(values["duration_s"]) * 1000)
        else:
            raise ValueError("give end_ms or duration_s")
        if end <= start:
            raise ValueError(f"the window must end after it starts ({start} .. {end})")
        self.faults.update({"maintenance_start_ms": start, "maintenance_end_ms": end})
        self.maintenance_notice = {"title": str(values.get("title") or "Scheduled system maintenance"),
                                   "announce": bool(values.get("announce", True))}
        return self.maintenance_info()

    def clear_maintenance(self) -> dict[str, Any]:
        self.faults.update({"maintenance_start_ms": 0, "maintenance_end_ms": 0})
        return self.maintenance_info()

    def maintenance_info(self) -> dict[str, Any]:
        f = self.faults
        now = self.clock.now_ms()
        window = None
        if f.maintenance_end_ms > f.maintenance_start_ms:
            window = {"start_ms": f.maintenance_start_ms, "end_ms": f.maintenance_end_ms,
                      "title": self.maintenance_notice["title"], "announced": self.maintenance_notice["announce"]}
        return {"now_ms": now, "active": f.in_maintenance(now), "window": window}

    def maintenance_feed(self) -> dict[str, Any]:
        """What the announcements say: announced windows that have not ended."""
        info = self.maintenance_info()
        w = info["window"]
        rows = [] if w is None or not w["announced"] or w["end_ms"] <= info["now_ms"] else [
            {"start_ms": w["start_ms"], "end_ms": w["end_ms"], "title": w["title"]}]
        return {"serverTime": info["now_ms"], "windows": rows}

    def deposit(self, amount: Decimal) -> dict[str, Any]:
        ex = self.exchange
        now = ex.processed_ms
        ex.account.wallet += amount
        ex.account.update_time = now
        ex._add_income("", "TRANSFER", amount, now, info="deposit")
        ex._account_event("DEPOSIT" if amount > 0 else "WITHDRAW", now, [])
        return {"wallet": fs(q8(ex.account.wallet))}

    def save_state(self) -> dict[str, Any]:
        if self.cfg.state_file is None:
            raise ValueError("no --state file configured")
        state_mod.save(self.exchange, self.cfg.state_file)
        return {"saved": str(self.cfg.state_file)}

    def state(self) -> dict[str, Any]:
        ex = self.exchange
        s = ex.summary()
        marks = ex.marks()
        positions = []
        for p in ex.account.open_positions():
            lp = ex.liq_price(p.symbol, marks)
            positions.append({
                "symbol": p.symbol, "amount": fs(p.amt), "entry": fs(q8(p.entry)), "mark": fs(marks[p.symbol]),
                "leverage": p.leverage, "margin_type": p.margin_type, "isolated_wallet": fs(q8(p.isolated_wallet)),
                "unrealized": fs(q8(p.unrealized(marks[p.symbol]))),
                "maint_margin": fs(q8(maintenance_margin(ex.tables[p.symbol], p.notional(marks[p.symbol])))),
                "liquidation_price": fs(q8(lp)) if lp is not None else None,
            })
        return {
            "clock": self.clock_info(),
            "prices": {sym: {"last": fs(ex.last_price(sym)), "mark": fs(marks[sym])} for sym in ex.data},
            "account": {
                "wallet": fs(q8(s.wallet)), "cross_wallet": fs(q8(s.cross_wallet)), "unrealized": fs(q8(s.unrealized)),
                "margin_balance": fs(q8(s.margin_balance)), "maint_margin": fs(q8(s.maint_margin)),
                "initial_margin": fs(q8(s.initial_margin)), "available": fs(q8(s.available)),
                "margin_ratio": str(q8(s.margin_ratio)) if s.margin_ratio.is_finite() else None,
                "dual_side": ex.account.dual_side, "multi_assets": ex.account.multi_assets,
            },
            "leverage": ex.leverage, "margin_type": ex.margin_type,
            "positions": positions,
            "open_orders": [o.to_api() for o in ex.orders.values() if o.is_open],
            "open_algo_orders": [a.to_api() for a in ex.algos.values() if a.is_open],
            "orders": len(ex.orders), "trades": len(ex.trades),
            "income": [i.to_api() for i in ex.income[-200:]],
            "faults": self.faults.as_dict(),
            "streams": len(self.hub.conns),
        }

    def close_user_streams(self, listen_key: str) -> None:
        self.hub.close_user_streams(listen_key)


class SimulatorThread:
    """A simulator on its own thread and event loop, for synchronous callers (sync ccxt tests, scripts)."""

    def __init__(self, cfg: SimConfig | None = None):
        self.cfg = cfg or SimConfig()
        self.server: SimulatorServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name="binance-sim", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.server = SimulatorServer(self.cfg)
            loop.run_until_complete(self.server.start())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def call(self, fn: Callable[[SimulatorServer], T]) -> T:
        """Run ``fn(server)`` on the simulator's loop (its state is not thread-safe) and return the result."""
        assert self._loop is not None and self.server is not None
        server = self.server

        async def run() -> T:
            return fn(server)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def step(self, ms: int) -> int:
        return self.call(lambda s: s.step(ms))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def rest_url(self) -> str:
        assert self.server is not None
        return self.server.rest_url

    @property
    def ws_url(self) -> str:
        assert self.server is not None
        return self.server.ws_url


def run(cfg: SimConfig) -> int:
    """Serve until SIGINT/SIGTERM (the ``bsmart sim`` command); the state file, if any, is written on the way out."""
    import signal

    async def main() -> None:
        sim = SimulatorServer(cfg)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await sim.start()
        print(f"binance simulator on {sim.rest_url} (websocket {sim.ws_url}), clock {sim.clock.mode} "
              f"x{sim.clock.speed:g} from {sim.clock.now_ms()} ms, pairs {', '.join(sim.data)}", flush=True)
        # Signed requests are accepted with this one key pair (what a config pointed at the simulator must carry);
        # after the banner, so scripts that read the first line for the address keep working.
        print(f"API key {DEFAULT_API_KEY}\nAPI secret {DEFAULT_API_SECRET}", flush=True)
        try:
            await stop.wait()
        finally:
            await sim.stop()

    asyncio.run(main())
    return 0
