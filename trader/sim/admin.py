"""The ``/_sim/`` admin API (a prefix Binance never uses): clock, prices, faults, book shape, account state.

JSON in, JSON out, no signing: it is for the operator, tests and drills on 127.0.0.1.

    GET    /_sim/state                  wallet, margin, positions with liquidation prices, open orders, income
    GET    /_sim/clock                  {time_ms, mode, speed}
    POST   /_sim/clock                  {mode?: real|accelerated|stepped, speed?, time_ms? (forward only)}
    POST   /_sim/clock/step             {ms?, seconds?}: advance, executing everything that crosses on the way
    POST   /_sim/price                  {symbol, price, target?: both|mark}: hold a price until cleared
    DELETE /_sim/price                  {symbol}: back to the replay
    POST   /_sim/price/script           {symbol, points: [[ms_from_now, price], …], hold?, target?}
    POST   /_sim/flash_crash            {symbol, drop_pct=10, duration_s=60, rebound_pct=100}
    GET    /_sim/faults                 current fault settings
    POST   /_sim/faults                 {latency_ms, jitter_ms, error_share, error_kinds: [503|-1001|429|-1007],
                                         maintenance_start_ms, maintenance_end_ms, ws_drop_every_s, seed}
    POST   /_sim/ws/drop                {private?: true}: close stream sockets now
    POST   /_sim/book                   {symbol?, spread_bps, levels, level_step_bps, level_notional,
                                         volatility_thinning, reset?}: every symbol's book shape, or one symbol's
    GET    /_sim/maintenance            the scheduled window and whether it is on now
    POST   /_sim/maintenance            {start_ms | in_s, end_ms | duration_s, title?, announce?=true}
    DELETE /_sim/maintenance            no window
    GET    /bsmart/v1/maintenance       the announced windows not yet over (what the exchange client reads; answers
                                         during maintenance too, like Binance's announcement pages)
    POST   /_sim/limits                 {limit, ban_after_429s, order_limit_10s, order_limit_1m}
    POST   /_sim/deposit                {amount}: transfer in (negative: out)
    POST   /_sim/weights/reset          forget used weight, 429 counts and bans
    POST   /_sim/save                   write the --state file now
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from trader.sim.errors import BinanceError

if TYPE_CHECKING:
    from trader.sim.server import SimulatorServer


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def routes(sim: SimulatorServer) -> list[web.RouteDef]:
    def wrap(fn: Callable[[dict[str, Any]], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                body = await _body(request)
                body.update({k: v for k, v in request.query.items() if k not in body})
                return web.json_response(fn(body))
            except BinanceError as e:
                return web.json_response(e.body(), status=e.status)
            except (KeyError, ValueError, TypeError) as e:
                return web.json_response({"error": f"{type(e).__name__}: {e}"}, status=400)
        return handler

    return [
        web.get("/_sim/state", wrap(lambda b: sim.state())),
        web.get("/_sim/clock", wrap(lambda b: sim.clock_info())),
        web.post("/_sim/clock", wrap(lambda b: sim.set_clock(mode=b.get("mode"), speed=b.get("speed"),
                                                             time_ms=b.get("time_ms")))),
        web.post("/_sim/clock/step", wrap(lambda b: {"time_ms": sim.step(int(b.get("ms", 0))
                                                                         + int(float(b.get("seconds", 0)) * 1000))})),
        web.post("/_sim/price", wrap(lambda b: sim.set_price(b["symbol"], float(b["price"]),
                                                             str(b.get("target", "both"))))),
        web.delete("/_sim/price", wrap(lambda b: sim.clear_price(b["symbol"]))),
        web.post("/_sim/price/script", wrap(lambda b: sim.script_price(
            b["symbol"], [(int(t), float(p)) for t, p in b["points"]], bool(b.get("hold", False)),
            target=str(b.get("target", "both"))))),
        web.post("/_sim/flash_crash", wrap(lambda b: sim.flash_crash(
            b["symbol"], float(b.get("drop_pct", 10)), int(float(b.get("duration_s", 60)) * 1000),
            float(b.get("rebound_pct", 100))))),
        web.get("/_sim/faults", wrap(lambda b: sim.faults.as_dict())),
        web.post("/_sim/faults", wrap(lambda b: sim.set_faults(b))),
        web.post("/_sim/ws/drop", wrap(lambda b: {"dropped": sim.hub.drop_all(bool(b.get("private", True)))})),
        web.post("/_sim/book", wrap(lambda b: sim.set_book(b))),
        web.get("/_sim/maintenance", wrap(lambda b: sim.maintenance_info())),
        web.post("/_sim/maintenance", wrap(lambda b: sim.schedule_maintenance(b))),
        web.delete("/_sim/maintenance", wrap(lambda b: sim.clear_maintenance())),
        web.get("/bsmart/v1/maintenance", wrap(lambda b: sim.maintenance_feed())),
        web.post("/_sim/deposit", wrap(lambda b: sim.deposit(Decimal(str(b["amount"]))))),
        web.post("/_sim/limits", wrap(lambda b: sim.weights.set_limits(b))),
        web.post("/_sim/weights/reset", wrap(lambda b: (sim.weights.reset(), {"ok": True})[1])),
        web.post("/_sim/save", wrap(lambda b: sim.save_state())),
    ]
