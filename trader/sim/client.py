"""ccxt clients pointed at a local Binance-compatible endpoint (the simulator, or any loopback stand-in).

Three things differ from a stock ``binanceusdm``: every Binance REST base URL is rewritten to the local host
(fapi*, sapi*, …), ``fetchCurrencies`` is off (it would call spot wallet endpoints), and the linear-futures error
table is merged into the exact table — ccxt only selects it when the URL is Binance's futures host, so against
127.0.0.1 a −2019 would otherwise surface as a bare ExchangeError instead of InsufficientFunds.
"""

from __future__ import annotations

from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

_BINANCE_HOSTS = ("https://fapi.binance.com", "https://api.binance.com", "https://dapi.binance.com",
                  "https://eapi.binance.com", "https://papi.binance.com")


def point_at(exchange: Any, rest_url: str, ws_url: str | None = None) -> Any:
    """Rewrite ``exchange``'s URLs in place to ``rest_url`` (``http://127.0.0.1:PORT``) and, for ccxt.pro, its
    linear websocket base to ``ws_url`` (must end in ``/ws``: ccxt rewrites it to /public|market|private/ws)."""
    api = exchange.urls["api"]
    for key, url in list(api.items()):
        if isinstance(url, str):
            for host in _BINANCE_HOSTS:
                if url.startswith(host):
                    api[key] = rest_url.rstrip("/") + url[len(host):]
    if ws_url is not None and isinstance(api.get("ws"), dict):
        if not ws_url.endswith("/ws"):
            raise ValueError("the websocket base must end in /ws")
        api["ws"]["linear"] = ws_url
    linear = exchange.exceptions.get("linear", {})
    exchange.exceptions["exact"].update(linear.get("exact", {}))
    exchange.exceptions["broad"].update(linear.get("broad", {}))
    return exchange


def _options(api_key: str, secret: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        # ccxt's throttle would hold every order 200 ms; the simulator reports weights in headers instead.
        "enableRateLimit": False,
        "options": {"fetchCurrencies": False, "defaultType": "swap"},
    }
    for k, v in (extra or {}).items():
        if k == "options":
            cfg["options"].update(v)
        else:
            cfg[k] = v
    return cfg


def make_client(rest_url: str, api_key: str = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET,
                config: dict[str, Any] | None = None) -> ccxt.binanceusdm:
    """Synchronous ``ccxt.binanceusdm`` against ``rest_url``."""
    return point_at(ccxt.binanceusdm(_options(api_key, secret, config)), rest_url)


def make_async_client(rest_url: str, api_key: str = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET,
                      config: dict[str, Any] | None = None) -> ccxt_async.binanceusdm:
    return point_at(ccxt_async.binanceusdm(_options(api_key, secret, config)), rest_url)


def make_pro_client(rest_url: str, ws_url: str, api_key: str = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET,
                    config: dict[str, Any] | None = None) -> ccxt_pro.binanceusdm:
    """ccxt.pro ``binanceusdm``: REST and websocket both on the local endpoint."""
    return point_at(ccxt_pro.binanceusdm(_options(api_key, secret, config)), rest_url, ws_url)
