"""Binance USDⓈ-M REST surface on aiohttp: public market data, signed account/trading endpoints, listenKey.

Every /fapi and /sapi request goes through one pipeline (``dispatch``): fault injection, request weight, auth, the
handler, then Binance's headers. Handlers receive the merged parameters (query wins over body, as at Binance).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from trader.sim.account import q8
from trader.sim.auth import check_api_key, verify
from trader.sim.brackets import maintenance_margin, max_notional
from trader.sim.errors import BinanceError, err
from trader.sim.faults import failure_error
from trader.sim.orders import fs
from trader.sim.ratio import h_long_short_ratio

if TYPE_CHECKING:
    from trader.sim.server import SimulatorServer

log = logging.getLogger(__name__)
Params = dict[str, str]
Handler = Callable[["SimulatorServer", Params, int], Any]

NONE, KEY, SIGNED = "NONE", "USER_STREAM", "SIGNED"
LISTEN_KEY_TTL_S = 3600.0
KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
ORDER_PATHS = {("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder"), ("PUT", "/fapi/v1/order"),
               ("POST", "/fapi/v1/batchOrders")}


@dataclass(frozen=True)
class Route:
    handler: Handler
    security: str
    weight: int | Callable[[Params], int]


def _symbol_list(sim: SimulatorServer, params: Params) -> list[str]:
    if params.get("symbol"):
        return [sim.exchange._sym(params["symbol"])]
    return list(sim.exchange.data)


# ---- public --------------------------------------------------------------------------------------------------
def h_ping(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {}


def h_time(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {"serverTime": now}


def h_exchange_info(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {
        "timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": sim.weights.limit},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": sim.weights.order_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": sim.weights.order_limit_10s},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [spec.exchange_info() for spec in sim.exchange.specs.values()],
    }


def _depth_weight(p: Params) -> int:
    limit = int(p.get("limit") or 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def h_depth(sim: SimulatorServer, p: Params, now: int) -> dict:
    sym = sim.exchange._sym(p.get("symbol"))
    limit = int(p.get("limit") or 500)
    if limit not in (5, 10, 20, 50, 100, 500, 1000):
        raise err(-1130, "limit")
    feed = sim.refresh_depth(sym)
    book = feed.book
    assert book is not None
    return {
        "lastUpdateId": feed.last_id, "E": now, "T": now,
        "bids": [[fs(px), fs(q)] for px, q in book.bids[:limit]],
        "asks": [[fs(px), fs(q)] for px, q in book.asks[:limit]],
    }


def _kline_weight(p: Params) -> int:
    limit = int(p.get("limit") or 500)
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _klines(sim: SimulatorServer, p: Params, now: int, mark: bool) -> list:
    sym = sim.exchange._sym(p.get("symbol") or p.get("pair"))
    interval = p.get("interval")
    if not interval:
        raise err(-1102, "interval")
    if interval not in KLINE_INTERVALS:
        raise BinanceError(-1120, "Invalid interval.")
    limit = int(p.get("limit") or 500)
    if not 1 <= limit <= 1500:
        raise err(-1130, "limit")
    start = int(p["startTime"]) if p.get("startTime") else None
    end = int(p["endTime"]) if p.get("endTime") else None
    spec = sim.exchange.specs[sym]
    try:
        rows = sim.exchange.data[sym].klines(interval, now, start, end, limit, mark=mark)
    except ValueError:
        raise BinanceError(-1120, "Invalid interval.") from None
    from trader.data.timeframes import timeframe_ms

    step = timeframe_ms(interval)
    out = []
    for t, o, h, low, c, v in rows:
        vol = Decimal(repr(v)).quantize(spec.step_size) if not mark else Decimal(0)
        close = spec.round_price(c)
        out.append([t, fs(spec.round_price(o)), fs(spec.round_price(h)), fs(spec.round_price(low)), fs(close),
                    fs(vol), t + step - 1, fs(q8(vol * close)), 0, "0", "0", "0"])
    return out


def h_klines(sim: SimulatorServer, p: Params, now: int) -> list:
    return _klines(sim, p, now, mark=False)


def h_mark_klines(sim: SimulatorServer, p: Params, now: int) -> list:
    return _klines(sim, p, now, mark=True)


def _premium(sim: SimulatorServer, sym: str, now: int) -> dict:
    ex = sim.exchange
    d = ex.data[sym]
    mark = ex.mark_price(sym)
    nft = d.next_funding_time(now)
    return {
        "symbol": sym, "markPrice": fs(mark), "indexPrice": fs(mark), "estimatedSettlePrice": fs(mark),
        # Binance shows the estimate for the coming settlement; the replay shows the last settled rate, since
        # the file's next rate is the future.
        "lastFundingRate": f"{d.last_settled_rate(now):.8f}", "interestRate": "0.00010000",
        "nextFundingTime": nft, "time": now,
    }


def h_premium_index(sim: SimulatorServer, p: Params, now: int) -> dict | list:
    if p.get("symbol"):
        return _premium(sim, sim.exchange._sym(p["symbol"]), now)
    return [_premium(sim, s, now) for s in sim.exchange.data]


def h_funding_rate(sim: SimulatorServer, p: Params, now: int) -> list:
    limit = min(int(p.get("limit") or 100), 1000)
    rows = []
    for sym in _symbol_list(sim, p):
        d = sim.exchange.data[sym]
        for t, r in zip(d.funding_ts.tolist(), d.funding_rate.tolist(), strict=True):
            if t > now:
                break
            rows.append({"symbol": sym, "fundingRate": f"{r:.8f}", "fundingTime": int(t),
                         "markPrice": fs(sim.exchange.mark_price(sym, int(t)))})
    if p.get("startTime"):
        rows = [r for r in rows if r["fundingTime"] >= int(p["startTime"])]
    if p.get("endTime"):
        rows = [r for r in rows if r["fundingTime"] <= int(p["endTime"])]
    rows.sort(key=lambda r: r["fundingTime"])
    if p.get("startTime"):
        return rows[:limit]
    return rows[-(limit if p.get("limit") or p.get("endTime") else 200):]


def h_funding_info(sim: SimulatorServer, p: Params, now: int) -> list:
    # Binance lists only symbols with adjusted caps/intervals; every simulated symbol uses the 8h default.
    return []


def _ticker(sim: SimulatorServer, sym: str, now: int) -> dict:
    d = sim.exchange.data[sym]
    rows = d.klines(f"{d.bar_ms // 60_000}m", now, None, None, 86_400_000 // d.bar_ms)
    spec = sim.exchange.specs[sym]
    last = sim.exchange.last_price(sym)
    first = spec.round_price(rows[0][1]) if rows else last
    high = spec.round_price(max(r[2] for r in rows)) if rows else last
    low = spec.round_price(min(r[3] for r in rows)) if rows else last
    vol = sum(r[5] for r in rows)
    change = last - first
    return {
        "symbol": sym, "priceChange": fs(change), "priceChangePercent": f"{(change / first * 100):.3f}",
        "weightedAvgPrice": fs(last), "lastPrice": fs(last), "lastQty": fs(spec.step_size), "openPrice": fs(first),
        "highPrice": fs(high), "lowPrice": fs(low), "volume": f"{vol:.3f}", "quoteVolume": f"{vol * float(last):.2f}",
        "openTime": int(rows[0][0]) if rows else now, "closeTime": now, "firstId": 0, "lastId": 0, "count": 0,
    }


def h_ticker_24hr(sim: SimulatorServer, p: Params, now: int) -> dict | list:
    if p.get("symbol"):
        return _ticker(sim, sim.exchange._sym(p["symbol"]), now)
    return [_ticker(sim, s, now) for s in sim.exchange.data]


def h_ticker_price(sim: SimulatorServer, p: Params, now: int) -> dict | list:
    rows = [{"symbol": s, "price": fs(sim.exchange.last_price(s)), "time": now} for s in _symbol_list(sim, p)]
    return rows[0] if p.get("symbol") else rows


def h_book_ticker(sim: SimulatorServer, p: Params, now: int) -> dict | list:
    rows = []
    for s in _symbol_list(sim, p):
        b = sim.exchange.book(s)
        rows.append({"symbol": s, "bidPrice": fs(b.bids[0][0]), "bidQty": fs(b.bids[0][1]),
                     "askPrice": fs(b.asks[0][0]), "askQty": fs(b.asks[0][1]), "time": now, "lastUpdateId": now})
    return rows[0] if p.get("symbol") else rows


def h_system_status(sim: SimulatorServer, p: Params, now: int) -> dict:
    if sim.faults.in_maintenance(now):
        return {"status": 1, "msg": "system maintenance"}
    return {"status": 0, "msg": "normal"}


# ---- account --------------------------------------------------------------------------------------------------
def _position_row(sim: SimulatorServer, sym: str, now: int, version: int) -> dict:
    ex = sim.exchange
    pos = ex.account.position(sym, ex.leverage[sym])
    mark = ex.mark_price(sym)
    lp = ex.liq_price(sym)
    notional = pos.notional(mark)
    mm = maintenance_margin(ex.tables[sym], notional) if pos.amt else Decimal(0)
    im = pos.initial_margin(mark) if pos.amt else Decimal(0)
    upnl = pos.unrealized(mark)
    ooim = ex.open_order_im().get(sym, Decimal(0))
    row: dict[str, object] = {
        "symbol": sym, "positionSide": "BOTH", "positionAmt": fs(pos.amt), "entryPrice": fs(q8(pos.entry)),
        "breakEvenPrice": fs(q8(pos.entry)), "markPrice": fs(mark), "unRealizedProfit": fs(q8(upnl)),
        "liquidationPrice": fs(q8(lp)) if lp is not None else "0",
        "isolatedMargin": fs(q8(pos.isolated_wallet + upnl)) if pos.isolated and pos.amt else "0",
        "notional": fs(q8(notional)), "marginAsset": "USDT", "isolatedWallet": fs(q8(pos.isolated_wallet)),
        "updateTime": pos.update_time,
    }
    if version >= 3:
        row.update({"initialMargin": fs(q8(im + ooim)), "maintMargin": fs(q8(mm)),
                    "positionInitialMargin": fs(q8(im)), "openOrderInitialMargin": fs(q8(ooim)), "adl": 0,
                    "bidNotional": "0", "askNotional": "0"})
    else:
        row.update({"leverage": str(ex.leverage[sym]),
                    "maxNotionalValue": str(int(max_notional(ex.tables[sym], ex.leverage[sym]))),
                    "marginType": "isolated" if pos.isolated else "cross", "isAutoAddMargin": "false",
                    "isolated": pos.isolated, "adlQuantile": 0})
    return row


def _active_symbols(sim: SimulatorServer) -> list[str]:
    ex = sim.exchange
    return [s for s in ex.data if (s in ex.account.positions and ex.account.positions[s].amt != 0)
            or ex.live_orders(s)]


def h_position_risk(version: int) -> Handler:
    def handler(sim: SimulatorServer, p: Params, now: int) -> list:
        syms = _symbol_list(sim, p) if version < 3 or p.get("symbol") else _active_symbols(sim)
        return [_position_row(sim, s, now, version) for s in syms]
    return handler


def _asset_row(sim: SimulatorServer) -> dict:
    s = sim.exchange.summary()
    ts = sim.exchange.account.update_time or sim.clock.now_ms()
    return {
        "asset": "USDT", "walletBalance": fs(q8(s.wallet)), "unrealizedProfit": fs(q8(s.unrealized)),
        "marginBalance": fs(q8(s.margin_balance)), "maintMargin": fs(q8(s.maint_margin)),
        "initialMargin": fs(q8(s.initial_margin)), "positionInitialMargin": fs(q8(s.position_im)),
        "openOrderInitialMargin": fs(q8(s.open_order_im)), "crossWalletBalance": fs(q8(s.cross_wallet)),
        "crossUnPnl": fs(q8(s.cross_unrealized)), "availableBalance": fs(q8(s.available)),
        "maxWithdrawAmount": fs(q8(min(s.available, s.wallet))), "marginAvailable": True,
        # ccxt skips assets whose updateTime is 0, so it is never 0 here.
        "updateTime": max(1, ts),
    }


def h_account(version: int) -> Handler:
    def handler(sim: SimulatorServer, p: Params, now: int) -> dict:
        ex = sim.exchange
        a = _asset_row(sim)
        totals = {
            "totalInitialMargin": a["initialMargin"], "totalMaintMargin": a["maintMargin"],
            "totalWalletBalance": a["walletBalance"], "totalUnrealizedProfit": a["unrealizedProfit"],
            "totalMarginBalance": a["marginBalance"], "totalPositionInitialMargin": a["positionInitialMargin"],
            "totalOpenOrderInitialMargin": a["openOrderInitialMargin"],
            "totalCrossWalletBalance": a["crossWalletBalance"], "totalCrossUnPnl": a["crossUnPnl"],
            "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
        }
        syms = _active_symbols(sim) if version >= 3 else list(ex.data)
        positions = []
        for sym in syms:
            r = _position_row(sim, sym, now, 3)
            row = {k: r[k] for k in ("symbol", "positionSide", "positionAmt", "isolatedMargin", "notional",
                                     "isolatedWallet", "initialMargin", "maintMargin", "updateTime")}
            if version < 3:
                row.update({"leverage": str(ex.leverage[sym]), "isolated": r["isolatedWallet"] != "0",
                            "entryPrice": r["entryPrice"], "breakEvenPrice": r["breakEvenPrice"],
                            "maxNotional": str(int(max_notional(ex.tables[sym], ex.leverage[sym]))),
                            "positionInitialMargin": r["positionInitialMargin"],
                            "openOrderInitialMargin": r["openOrderInitialMargin"], "bidNotional": "0",
                            "askNotional": "0", "unrealizedProfit": r["unRealizedProfit"]})
            else:
                row["unrealizedProfit"] = r["unRealizedProfit"]
            positions.append(row)
        out: dict[str, object] = {**totals, "assets": [a], "positions": positions}
        if version < 3:
            out.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                        "feeBurn": False, "updateTime": 0, "multiAssetsMargin": ex.account.multi_assets,
                        "tradeGroupId": -1})
        return out
    return handler


def h_balance(sim: SimulatorServer, p: Params, now: int) -> list:
    a = _asset_row(sim)
    return [{"accountAlias": "SgsR", "asset": "USDT", "balance": a["walletBalance"],
             "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
             "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": a["updateTime"]}]


def h_leverage_bracket(sim: SimulatorServer, p: Params, now: int) -> list | dict:
    rows = [{"symbol": s, "notionalCoef": 1.0, "brackets": [b.as_api() for b in sim.exchange.tables[s]]}
            for s in _symbol_list(sim, p)]
    # ccxt asks without a symbol and wants the array; with one, Binance's docs show the bare object.
    return rows[0] if p.get("symbol") else rows


def h_commission(sim: SimulatorServer, p: Params, now: int) -> dict:
    sym = sim.exchange._sym(p.get("symbol"))
    return {"symbol": sym, "makerCommissionRate": fs(sim.cfg.maker_fee), "takerCommissionRate": fs(sim.cfg.taker_fee),
            "rpiCommissionRate": "0"}


def h_symbol_config(sim: SimulatorServer, p: Params, now: int) -> list:
    ex = sim.exchange
    return [{"symbol": s, "marginType": ex.margin_type[s], "isAutoAddMargin": False, "leverage": ex.leverage[s],
             "maxNotionalValue": str(int(max_notional(ex.tables[s], ex.leverage[s])))} for s in _symbol_list(sim, p)]


def h_dual_get(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {"dualSidePosition": sim.exchange.account.dual_side}


def h_multi_get(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {"multiAssetsMargin": sim.exchange.account.multi_assets}


def h_api_restrictions(sim: SimulatorServer, p: Params, now: int) -> dict:
    return {**sim.cfg.api_restrictions, "createTime": 1700000000000}


def _call(method: str) -> Handler:
    def handler(sim: SimulatorServer, p: Params, now: int) -> Any:
        return getattr(sim.exchange, method)(p, now)
    return handler


def h_open_order(sim: SimulatorServer, p: Params, now: int) -> dict:
    o = sim.exchange.query_order(p, now)
    if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
        raise BinanceError(-2013, "Order does not exist.")
    return o


# ---- listenKey -----------------------------------------------------------------------------------------------
def h_listen_key_post(sim: SimulatorServer, p: Params, now: int) -> dict:
    live = [k for k, exp in sim.listen_keys.items() if exp > time.time()]
    key = live[0] if live else secrets.token_urlsafe(48)[:64]
    sim.listen_keys[key] = time.time() + LISTEN_KEY_TTL_S
    return {"listenKey": key}


def h_listen_key_put(sim: SimulatorServer, p: Params, now: int) -> dict:
    live = [k for k, exp in sim.listen_keys.items() if exp > time.time()]
    key = p.get("listenKey") or (live[0] if live else None)
    if key is None or key not in live:
        raise err(-1125)
    sim.listen_keys[key] = time.time() + LISTEN_KEY_TTL_S
    return {"listenKey": key}


def h_listen_key_delete(sim: SimulatorServer, p: Params, now: int) -> dict:
    for k in list(sim.listen_keys):
        if not p.get("listenKey") or k == p["listenKey"]:
            del sim.listen_keys[k]
            sim.close_user_streams(k)
    return {}


def h_empty_list(sim: SimulatorServer, p: Params, now: int) -> list:
    return []


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(h_ping, NONE, 1),
    ("GET", "/fapi/v1/time"): Route(h_time, NONE, 1),
    ("GET", "/fapi/v1/exchangeInfo"): Route(h_exchange_info, NONE, 1),
    ("GET", "/fapi/v1/depth"): Route(h_depth, NONE, _depth_weight),
    ("GET", "/fapi/v1/klines"): Route(h_klines, NONE, _kline_weight),
    ("GET", "/fapi/v1/markPriceKlines"): Route(h_mark_klines, NONE, _kline_weight),
    ("GET", "/fapi/v1/indexPriceKlines"): Route(h_mark_klines, NONE, _kline_weight),
    ("GET", "/fapi/v1/premiumIndex"): Route(h_premium_index, NONE, lambda p: 1 if p.get("symbol") else 10),
    ("GET", "/fapi/v1/fundingRate"): Route(h_funding_rate, NONE, 1),
    ("GET", "/fapi/v1/fundingInfo"): Route(h_funding_info, NONE, 1),
    ("GET", "/futures/data/globalLongShortAccountRatio"): Route(h_long_short_ratio, NONE, 1),
    ("GET", "/fapi/v1/ticker/24hr"): Route(h_ticker_24hr, NONE, lambda p: 1 if p.get("symbol") else 40),
    ("GET", "/fapi/v1/ticker/price"): Route(h_ticker_price, NONE, lambda p: 1 if p.get("symbol") else 2),
    ("GET", "/fapi/v2/ticker/price"): Route(h_ticker_price, NONE, lambda p: 1 if p.get("symbol") else 2),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(h_book_ticker, NONE, lambda p: 2 if p.get("symbol") else 5),
    ("GET", "/sapi/v1/system/status"): Route(h_system_status, NONE, 1),
    ("GET", "/fapi/v2/account"): Route(h_account(2), SIGNED, 5),
    ("GET", "/fapi/v3/account"): Route(h_account(3), SIGNED, 5),
    ("GET", "/fapi/v2/balance"): Route(h_balance, SIGNED, 5),
    ("GET", "/fapi/v3/balance"): Route(h_balance, SIGNED, 5),
    ("GET", "/fapi/v2/positionRisk"): Route(h_position_risk(2), SIGNED, 5),
    ("GET", "/fapi/v3/positionRisk"): Route(h_position_risk(3), SIGNED, 5),
    ("GET", "/fapi/v1/leverageBracket"): Route(h_leverage_bracket, SIGNED, 1),
    ("GET", "/fapi/v1/commissionRate"): Route(h_commission, SIGNED, 20),
    ("GET", "/fapi/v1/symbolConfig"): Route(h_symbol_config, SIGNED, 5),
    ("POST", "/fapi/v1/leverage"): Route(_call("set_leverage"), SIGNED, 1),
    ("POST", "/fapi/v1/marginType"): Route(_call("set_margin_type"), SIGNED, 1),
    ("GET", "/fapi/v1/positionSide/dual"): Route(h_dual_get, SIGNED, 30),
    ("POST", "/fapi/v1/positionSide/dual"): Route(_call("set_dual"), SIGNED, 1),
    ("GET", "/fapi/v1/multiAssetsMargin"): Route(h_multi_get, SIGNED, 30),
    ("POST", "/fapi/v1/multiAssetsMargin"): Route(_call("set_multi_assets"), SIGNED, 1),
    ("POST", "/fapi/v1/order"): Route(_call("place_order"), SIGNED, 0),
    ("PUT", "/fapi/v1/order"): Route(_call("modify_order"), SIGNED, 1),
    ("POST", "/fapi/v1/batchOrders"): Route(_call("place_batch"), SIGNED, 5),
    ("DELETE", "/fapi/v1/batchOrders"): Route(_call("cancel_batch"), SIGNED, 1),
    ("GET", "/fapi/v1/order"): Route(_call("query_order"), SIGNED, 1),
    ("DELETE", "/fapi/v1/order"): Route(_call("cancel_order"), SIGNED, 1),
    ("GET", "/fapi/v1/openOrder"): Route(h_open_order, SIGNED, 1),
    ("GET", "/fapi/v1/openOrders"): Route(_call("open_orders"), SIGNED, lambda p: 1 if p.get("symbol") else 40),
    ("GET", "/fapi/v1/allOrders"): Route(_call("all_orders"), SIGNED, 5),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(_call("cancel_all"), SIGNED, 1),
    ("POST", "/fapi/v1/algoOrder"): Route(_call("place_algo"), SIGNED, 0),
    ("GET", "/fapi/v1/algoOrder"): Route(_call("query_algo"), SIGNED, 1),
    ("DELETE", "/fapi/v1/algoOrder"): Route(_call("cancel_algo"), SIGNED, 1),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(_call("open_algos"), SIGNED, lambda p: 1 if p.get("symbol") else 40),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(_call("all_algos"), SIGNED, 5),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Route(_call("cancel_all_algos"), SIGNED, 1),
    ("GET", "/fapi/v1/userTrades"): Route(_call("user_trades"), SIGNED, 5),
    ("GET", "/fapi/v1/income"): Route(_call("income_history"), SIGNED, 30),
    ("POST", "/fapi/v1/listenKey"): Route(h_listen_key_post, KEY, 1),
    ("PUT", "/fapi/v1/listenKey"): Route(h_listen_key_put, KEY, 1),
    ("DELETE", "/fapi/v1/listenKey"): Route(h_listen_key_delete, KEY, 1),
    ("GET", "/sapi/v1/account/apiRestrictions"): Route(h_api_restrictions, SIGNED, 1),
    ("GET", "/sapi/v1/capital/config/getall"): Route(h_empty_list, SIGNED, 10),
    ("GET", "/sapi/v1/margin/allPairs"): Route(h_empty_list, KEY, 1),
}


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


async def dispatch(sim: SimulatorServer, request: web.Request) -> web.StreamResponse:
    key = (request.method, request.path)
    route = ROUTES.get(key)
    if route is None:
        if any(path == request.path for _, path in ROUTES):
            return _json({"code": -1000, "msg": f"Method {request.method} not allowed."}, 405)
        return _json({"code": -1000, "msg": f"Path {request.path} not found."}, 404)
    headers: dict[str, str] = {}
    ip = request.remote or "127.0.0.1"
    faults = sim.faults
    delay = faults.delay_s()
    if delay:
        await asyncio.sleep(delay)
    # Binance signs the query exactly as sent: keep it percent-encoded (aiohttp's query_string is decoded).
    raw_query = request.rel_url.raw_query_string
    raw_body = (await request.read()).decode() if request.can_read_body else ""
    params: Params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(dict(parse_qsl(raw_query, keep_blank_values=True)))
    now = sim.clock.now_ms()
    status_unknown = False
    try:
        weight = route.weight(params) if callable(route.weight) else route.weight
        headers["X-MBX-USED-WEIGHT-1M"] = str(sim.weights.used(ip))
        used = sim.weights.charge(ip, weight)
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        if faults.in_maintenance(now) and request.path.startswith("/fapi"):
            raise BinanceError(-1001, "Service Unavailable.", 503)
        kind = faults.pick_failure() if request.path.startswith("/fapi") else None
        if kind == "-1007" and key in ORDER_PATHS:
            status_unknown = True  # executed below, answered as a timeout
        elif kind is not None:
            raise failure_error(kind)
        if route.security == SIGNED:
            verify(raw_query, raw_body, request.headers, sim.cfg.api_keys, params, int(time.time() * 1000))
        elif route.security == KEY:
            check_api_key(request.headers, sim.cfg.api_keys)
        if key in ORDER_PATHS:
            c10, c1m = sim.weights.count_order()
            headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
            headers["X-MBX-ORDER-COUNT-1M"] = str(c1m)
        sim.exchange.advance(now)
        result = route.handler(sim, params, now)
        sim.after_request()
        if status_unknown:
            raise failure_error("-1007")
        return _json(result, headers=headers)
    except BinanceError as e:
        if e.status == 429:
            headers["Retry-After"] = str(sim.weights.retry_after())
        if e.status == 503 and e.msg == "Service Unavailable.":
            return web.Response(status=503, text="Service Unavailable.", headers=headers)
        return _json(e.body(), e.status, headers)
    except (ValueError, KeyError, ArithmeticError) as e:
        return _json({"code": -1102, "msg": f"Mandatory parameter or malformed value: {e}"}, 400, headers)
    except Exception:  # a simulator bug must still answer like Binance, and leave a trace
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json({"code": -1000, "msg": "An unknown error occured while processing the request."}, 500, headers)


def make_handler(sim: SimulatorServer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await dispatch(sim, request)
    return handler
