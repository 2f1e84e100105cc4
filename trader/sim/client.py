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

from trader.exchange.ccxt_binance import point_at
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

__all__ = ["make_async_client", "make_client", "make_pro_client", "point_at"]


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
