"""The exchange client: every call the engine makes to Binance (or the simulator) goes through here.

Each call passes the weight gate (by priority), is timed for the latency tiers, and fails only with
``ExchangeError``. Reads are retried on temporary errors. Writes are never repeated blindly: after any failure whose
outcome may be unknown, the order is looked up by its deterministic client id first.

Rate limits (weights.py): a request the gate holds back longer than its priority's bound is refused with
``RateLimited`` (never sent); a 429 answered to a protective request or order is retried after a short bounded
backoff (``ClientOptions.throttle_retry_delays``), never parked for the whole Retry-After; a 418 refuses everything.
``not_sent(exc)`` tells a caller that a failed request certainly did not reach (or was refused by) the exchange.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from trader.config.pairs import exchange_symbol
from trader.exchange.backoff import BackoffPolicy, with_retries
from trader.exchange.ccxt_binance import BinanceUSDM, make_exchange
from trader.exchange.errors import (
    DUPLICATE_CLIENT_ID,
    NO_CHANGE_NEEDED,
    ErrorClass,
    ExchangeError,
    classify_code,
    classify_exception,
)
from trader.exchange.latency import LatencyMonitor
from trader.exchange.models import Balance, OrderRequest, OrderState, Position, StartupReport, UserTrade
from trader.exchange.order_body import DIRECT_TYPES, order_body
from trader.exchange.weights import Priority, RateLimited, WeightGate
from trader.model.instruments import InstrumentSpec, MissingRules, spec_from_exchange
from trader.model.rules import raw_rules

log = logging.getLogger(__name__)
T = TypeVar("T")

# IP weight of the calls we make (binance-futures.md §8.2); orders cost order-count, not IP weight, but are
# charged 1 so that a burst of orders still registers in the local estimate between headers.
WEIGHTS = {
    "load_markets": 1, "fetch_time": 1, "fetch_balance": 5, "fetch_positions": 6, "fetch_position_mode": 30,
    "fetch_multi_assets": 30, "set_margin_mode": 1, "set_leverage": 1, "set_position_mode": 1,
    "create_order": 1, "cancel_order": 1, "cancel_all": 1, "fetch_order": 1, "fetch_open_orders": 1,
    "fetch_my_trades": 5, "fetch_ohlcv": 5, "fetch_order_book": 10, "fetch_funding_history": 30,
    "fetch_funding_rate_history": 1, "fetch_api_restrictions": 1, "fetch_leverage_tiers": 1, "fetch_ticker": 1,
    "fetch_long_short_ratio": 1, "fetch_maintenance": 1,
}


@dataclass
class ClientOptions:
    api_url: str | None = None
    ws_url: str | None = None
    api_key: str | None = None
    secret: str | None = None
    timeout_ms: int = 10_000
    recv_window_ms: int = 5_000
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    resolve_attempts: int = 3  # lookups of an unknown-outcome order before it is declared not placed
    resolve_delay_s: float = 0.2
    live: bool = False  # live trading refuses keys that can withdraw
    # After a 429 on a protective request or an order: short pauses before sending again, then give up with the
    # error (Binance bans IPs that keep going after 429s, so this stays short and few).
    throttle_retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0)
    recheck_after_wait_s: float = 0.25  # an order held back at least this long is re-checked before it goes


StillWanted = Callable[[OrderRequest], "bool | Awaitable[bool]"]


def not_sent(exc: BaseException) -> bool:
    """True when a failed request certainly did not take effect: refused by the gate (``RateLimited``), by the
    exchange's rate limiter (429/418), or dropped by ``still_wanted`` (``OrderNotWanted``). Such an order needs no
    lookup (``find_order``): it was not placed. Tell the user ``str(exc.info.message)``, e.g. "not sent: rate
    limited (request weight, after a 429 on GET /fapi/v1/klines) for another 41 s"."""
    if getattr(exc, "sent", None) is False:
        return True
    return _rate_limited(exc)


def _rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, RateLimited) or (isinstance(exc, ExchangeError) and exc.info.http_status in (418, 429))


class OrderNotWanted(ExchangeError):
    """``still_wanted`` said no after the order was held back: it was not sent."""

    sent = False

    def __init__(self, request: OrderRequest):
        super().__init__(classify_code(None, None, f"{request.client_order_id}: not sent: held back by rate "
                                                   "limiting and no longer wanted when it could go"), "create_order")


class ExchangeClient:
    def __init__(
        self,
        options: ClientOptions,
        *,
        gate: WeightGate | None = None,
        latency: LatencyMonitor | None = None,
        on_permission_error: Callable[[ExchangeError], None] | None = None,
    ):
        self.options = options
        self.gate = gate or WeightGate()
        self.latency = latency or LatencyMonitor()
        self._on_permission_error = on_permission_error
        self.ccxt: BinanceUSDM = make_exchange(
            options.api_url,
            options.ws_url,
            options.api_key,
            options.secret,
            timeout_ms=options.timeout_ms,
            recv_window_ms=options.recv_window_ms,
            observer=self._observe,
        )
        self.api_errors = 0
        # GET /fapi/v1/leverageBracket rows per exchange symbol, read by load_rules (all symbols in one call).
        self.bracket_rows: dict[str, list[dict[str, Any]]] = {}
        self.rule_notes: list[str] = []

    def kline_event(self, event: Mapping[str, Any]) -> None:
        """A kline event read off a socket of our own (trader/exchange/klines.py), not through ccxt's handler: what
        observes this client's traffic sees it here too (the metered client times candle → order from it)."""

    async def close(self) -> None:
        await self.ccxt.close()

    async def __aenter__(self) -> ExchangeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------------------------------
    def _observe(self, endpoint: str, status: int, headers: Mapping[str, str], ms: float,
                 code: int | None = None) -> None:
        self.latency.record_rest(endpoint, ms)
        self.gate.observe_headers(headers)
        if status in (418, 429):
            raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            try:
                retry_after = float(raw) if raw else None
            except ValueError:
                retry_after = None
            self.gate.observe_limit(status, retry_after, code=code, endpoint=endpoint)

    async def _once(self, name: str, priority: Priority, call: Callable[[], Awaitable[T]], *,
                    max_wait_s: float | None = None,
                    before_send: Callable[[float], Awaitable[None]] | None = None) -> T:
        """One request through the gate. ``before_send(waited_s)`` runs after admission, before sending."""
        waited = await self.gate.acquire(priority, WEIGHTS.get(name, 1), max_wait_s=max_wait_s, operation=name)
        if before_send is not None:
            await before_send(waited)
        started = time.perf_counter()
        try:
            return await call()
        except ccxt.BaseError as exc:
            error = ExchangeError(classify_exception(exc), name)
            timed_out = isinstance(exc, ccxt.RequestTimeout)
        except (asyncio.TimeoutError, OSError) as exc:
            error = ExchangeError(classify_exception(exc), name)
            timed_out = isinstance(exc, asyncio.TimeoutError | TimeoutError)
        if timed_out:
            # No answer means no response hook ran: the wait is latency evidence all the same (a dead link must
            # not look like a quiet, healthy one to the latency tiers).
            self.latency.record_rest(f"{name} (no answer)", (time.perf_counter() - started) * 1000)
        if error.info.code not in NO_CHANGE_NEEDED:  # "already so" is an answer, not a failure
            self.api_errors += 1
        if error.error_class is ErrorClass.PERMISSION and self._on_permission_error:
            self._on_permission_error(error)
        raise error

    async def _throttled(self, name: str, priority: Priority, call: Callable[[], Awaitable[T]], *,
                         max_wait_s: float | None = None,
                         before_send: Callable[[float], Awaitable[None]] | None = None) -> T:
        """``_once``, sent again after a 429 answer: protective requests after a short pause of their own (they
        are not held by the pause the 429 starts, up to the gate's strike limit); others through the gate, which
        holds them until Retry-After within their bound or refuses them. A 418, or a refusal by the gate, ends it."""
        delays = self.options.throttle_retry_delays
        attempt = 0
        while True:
            try:
                return await self._once(name, priority, call, max_wait_s=max_wait_s, before_send=before_send)
            except RateLimited:
                raise
            except ExchangeError as exc:
                status = exc.info.http_status
                if status == 418 or (status == 429 and attempt >= len(delays)):
                    # Say plainly what happened and for how long: not sent, blocked for N s.
                    raise self.gate.refusal(name, status, exc.info.code) from exc
                if status != 429:
                    raise
                if priority is Priority.PROTECT:
                    log.warning("%s: throttled (429); sending again in %.2fs", name, delays[attempt])
                    await asyncio.sleep(delays[attempt])
                attempt += 1

    async def _read(self, name: str, priority: Priority, call: Callable[[], Awaitable[T]]) -> T:
        # Rate-limit answers are handled by _throttled and the gate; with_retries would sleep out the Retry-After.
        return await with_retries(lambda: self._throttled(name, priority, call), self.options.backoff, name=name,
                                  may_retry=lambda exc: not _rate_limited(exc))

    async def _setting(self, name: str, call: Callable[[], Awaitable[Any]]) -> bool:
        """An idempotent account setting: "no need to change" counts as done. Returns True when it changed."""
        try:
            await self._read(name, Priority.ACCOUNT, call)
            return True
        except ExchangeError as exc:
            if exc.info.code in NO_CHANGE_NEEDED or "No need to change" in exc.info.message:
                return False
            raise

    # -- start-up ---------------------------------------------------------------------------------------------------
    async def initialize(self, pairs: list[str], leverage: int) -> StartupReport:
        """The seed's start-up checks. Any failure raises ExchangeError naming its cause; nothing trades then."""
        report = StartupReport()
        await self._read("load_markets", Priority.MARKET_DATA, lambda: self.ccxt.load_markets(reload=True))
        await self._learn_weight_limit()
        unknown = [p for p in pairs if p not in self.ccxt.markets]
        if unknown:
            raise ExchangeError(classify_code(-1121, 400, f"pairs not listed on the exchange: {', '.join(unknown)}"),
                                "initialize")
        inactive = [p for p in pairs if not self.ccxt.markets[p].get("active", True)]
        if inactive:
            raise ExchangeError(classify_code(-1121, 400, f"pairs not trading: {', '.join(inactive)}"), "initialize")
        if not (self.options.api_key and self.options.secret):
            report.notes.append("no API keys: market data only")
            return report
        report.api_restrictions = await self._api_restrictions()
        mode = await self._read("fetch_position_mode", Priority.ACCOUNT, lambda: self.ccxt.fetch_position_mode())
        if mode.get("hedged"):
            await self._setting("set_position_mode", lambda: self.ccxt.set_position_mode(False))
            report.changed.append("position mode: hedge -> one-way")
        multi = await self._read("fetch_multi_assets", Priority.ACCOUNT,
                                 lambda: self.ccxt.fapiPrivateGetMultiAssetsMargin())
        if str(multi.get("multiAssetsMargin")).lower() == "true":
            await self._setting("set_multi_assets", lambda: self.ccxt.fapiPrivatePostMultiAssetsMargin(
                {"multiAssetsMargin": "false"}))
            report.changed.append("multi-assets margin: on -> off")
        for pair in pairs:
            if await self._setting("set_margin_mode", lambda p=pair: self.ccxt.set_margin_mode("cross", p)):
                report.changed.append(f"{pair}: margin type -> cross")
            await self._read("set_leverage", Priority.ACCOUNT, lambda p=pair: self.ccxt.set_leverage(leverage, p))
        await self.load_rules()
        report.notes.extend(self.rule_notes)
        report.balance = await self.fetch_balance()
        report.ok = True
        return report

    async def load_rules(self) -> None:
        """Read every symbol's leverage brackets (GET /fapi/v1/leverageBracket, one call, USER_DATA); with the loaded
        markets' exchangeInfo entries they are the rules ``instrument`` hands out. Without keys (or permission) the
        brackets stay unread and ``instrument`` falls back to the bundled snapshot, saying so in ``rule_notes``."""
        if not self.ccxt.markets:
            await self._read("load_markets", Priority.MARKET_DATA, lambda: self.ccxt.load_markets())
        if not (self.options.api_key and self.options.secret):
            self.rule_notes.append("no API keys: leverage brackets from the bundled snapshot")
            return
        try:
            raw = await self.fetch_leverage_bracket_rows()
        except ExchangeError as exc:
            self.rule_notes.append(f"leverage brackets could not be read ({exc}): bundled snapshot used")
            log.warning("leverage brackets could not be read: %s", exc)
            return
        self.bracket_rows = {str(i["symbol"]): list(i.get("brackets") or ()) for i in raw}

    async def fetch_exchange_info(self) -> dict[str, Any]:
        """``GET /fapi/v1/exchangeInfo`` as Binance answers it."""
        return await self._read("exchange_info", Priority.MARKET_DATA, lambda: self.ccxt.fapiPublicGetExchangeInfo())

    async def fetch_leverage_bracket_rows(self) -> list[dict[str, Any]]:
        """``GET /fapi/v1/leverageBracket`` for every symbol, as Binance answers it (USER_DATA: needs keys)."""
        raw = await self._read("fetch_leverage_tiers", Priority.ACCOUNT,
                               lambda: self.ccxt.fapiPrivateGetLeverageBracket())
        items = raw if isinstance(raw, list) else [raw]
        return [i for i in items if isinstance(i, dict) and i.get("symbol")]

    def instrument(self, pair: str) -> InstrumentSpec:
        """``pair``'s rules: the loaded market's exchangeInfo entry and the leverage brackets read at start; where
        either is missing, the bundled snapshot's (marked in ``assumed``); MissingRules when neither exists."""
        sym = exchange_symbol(pair)
        market = self.ccxt.markets.get(pair) if self.ccxt.markets else None
        entry = market.get("info") if market else None
        rows = self.bracket_rows.get(sym)
        assumed: list[str] = []
        if entry is None or not rows:
            b_entry, b_rows = raw_rules(sym)
            if entry is None and b_entry is not None:
                entry = b_entry
                assumed.append("filters (bundled snapshot)")
            if not rows and b_rows:
                rows = list(b_rows)
                assumed.append("leverage brackets (bundled snapshot)")
        if entry is None or not rows:
            missing = [w for w, v in (("exchangeInfo filters", entry), ("leverage brackets", rows)) if not v]
            raise MissingRules(f"{pair}: no {' and no '.join(missing)} from the exchange or the bundled snapshot")
        source = "exchange" if not assumed else "exchange + bundled snapshot" if market else "bundled snapshot"
        return spec_from_exchange(pair, entry, rows, source=source, assumed=assumed)

    async def _learn_weight_limit(self) -> None:
        """Binance announces the per-minute weight limit in exchangeInfo; the gate budgets against it."""
        info = await self._read("exchange_info", Priority.MARKET_DATA, lambda: self.ccxt.fapiPublicGetExchangeInfo())
        for rule in info.get("rateLimits", []):
            if rule.get("rateLimitType") == "REQUEST_WEIGHT" and rule.get("interval") == "MINUTE":
                self.gate.state.limit = int(rule["limit"]) * max(1, int(rule.get("intervalNum", 1)))

    async def _api_restrictions(self) -> dict[str, Any]:
        try:
            flags = await self._read("fetch_api_restrictions", Priority.ACCOUNT,
                                     lambda: self.ccxt.sapiGetAccountApiRestrictions())
        except ExchangeError as exc:
            if exc.error_class is ErrorClass.PERMISSION:
                raise
            log.warning("API key permissions could not be read: %s", exc)
            return {}
        if self.options.live and flags.get("enableWithdrawals"):
            raise ExchangeError(
                classify_code(-2015, 401, "this API key can withdraw funds; create a key without withdrawal permission"),
                "initialize",
            )
        if flags.get("enableFutures") is False:
            raise ExchangeError(classify_code(-2015, 401, "this API key is not enabled for futures"), "initialize")
        if not flags.get("ipRestrict", True):
            log.warning("the API key is not restricted to an IP address")
        return flags

    # -- reads ------------------------------------------------------------------------------------------------------
    async def fetch_balance(self) -> Balance:
        raw = await self._read("fetch_balance", Priority.ACCOUNT, lambda: self.ccxt.fetch_balance())
        info = raw.get("info", {})
        return Balance(
            wallet=Decimal(str(info.get("totalWalletBalance", raw.get("USDT", {}).get("total") or 0))),
            available=Decimal(str(info.get("availableBalance", raw.get("USDT", {}).get("free") or 0))),
            unrealized_pnl=Decimal(str(info.get("totalUnrealizedProfit", 0))),
            margin_balance=Decimal(str(info.get("totalMarginBalance", 0))),
            maintenance_margin=Decimal(str(info.get("totalMaintMargin", 0))),
        )

    async def fetch_positions(self, pairs: list[str] | None = None, *, protective: bool = False) -> list[Position]:
        """Open positions. ``protective``: the read serves a stop, an exit or a flatten, so it is not held behind a
        rate-limit pause that reads started (``Priority.PROTECT``)."""
        priority = Priority.PROTECT if protective else Priority.ACCOUNT
        raw = await self._read("fetch_positions", priority, lambda: self.ccxt.fetch_positions(pairs))
        return [p for p in (Position.from_ccxt(r) for r in raw) if p.contracts != 0]

    async def fetch_open_orders(self, pair: str | None = None) -> list[OrderState]:
        regular = await self._read("fetch_open_orders", Priority.PROTECT, lambda: self.ccxt.fetch_open_orders(pair))
        algo = await self._read("fetch_open_orders", Priority.PROTECT,
                                lambda: self.ccxt.fetch_open_orders(pair, params={"trigger": True}))
        return [OrderState.from_ccxt(o, is_algo=False) for o in regular] + [
            OrderState.from_ccxt(o, is_algo=True) for o in algo
        ]

    async def fetch_order(self, pair: str, client_order_id: str, *, algo: bool) -> OrderState | None:
        """The order with this client id, or None when the exchange has no such order."""
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if algo:
            params["trigger"] = True
        try:
            raw = await self._read("fetch_order", Priority.PROTECT, lambda: self.ccxt.fetch_order(None, pair, params))
        except ExchangeError as exc:
            if exc.info.not_found:
                return None
            raise
        return OrderState.from_ccxt(raw, is_algo=algo)

    async def fetch_time(self) -> int:
        """The exchange's clock in ms (the simulator's replay time when pointed at it)."""
        return int(await self._read("fetch_time", Priority.MARKET_DATA, lambda: self.ccxt.fetch_time()))

    async def fetch_ohlcv(
        self, pair: str, timeframe: str, since_ms: int | None = None, limit: int = 1000, *, mark: bool = False
    ) -> list[list[float]]:
        params = {"price": "mark"} if mark else {}
        return await self._read(
            "fetch_ohlcv", Priority.MARKET_DATA,
            lambda: self.ccxt.fetch_ohlcv(pair, timeframe, since=since_ms, limit=limit, params=params),
        )

    async def fetch_funding_rate_history(self, pair: str, since_ms: int | None = None, limit: int = 1000) -> list[dict]:
        return await self._read(
            "fetch_funding_rate_history", Priority.MARKET_DATA,
            lambda: self.ccxt.fetch_funding_rate_history(pair, since=since_ms, limit=limit),
        )

    async def fetch_funding_payments(self, since_ms: int | None = None) -> list[dict[str, Any]]:
        """Funding the account paid or received (income FUNDING_FEE), every pair: symbol, timestamp, amount."""
        return await self._read("fetch_funding_history", Priority.ACCOUNT,
                                lambda: self.ccxt.fetch_funding_history(None, since_ms))

    async def fetch_order_book(self, pair: str, limit: int = 1000) -> dict[str, Any]:
        """The raw REST snapshot (with lastUpdateId), as the local order book procedure needs it."""
        return await self._read(
            "fetch_order_book", Priority.MARKET_DATA,
            lambda: self.ccxt.fapiPublicGetDepth({"symbol": exchange_symbol(pair), "limit": limit}),
        )

    async def fetch_long_short_ratio(self, pair: str, period: str = "5m", since_ms: int | None = None,
                                     until_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Binance's global long/short account ratio (GET /futures/data/globalLongShortAccountRatio): raw rows
        (symbol, longShortRatio, longAccount, shortAccount as strings, timestamp), oldest first. Binance keeps the
        latest 30 days only; the simulator answers from stored data or with an empty list."""
        params: dict[str, Any] = {"symbol": exchange_symbol(pair), "period": period, "limit": min(limit, 500)}
        if since_ms is not None:
            params["startTime"] = since_ms
        if until_ms is not None:
            params["endTime"] = until_ms
        return await self._read("fetch_long_short_ratio", Priority.MARKET_DATA,
                                lambda: self.ccxt.fapiDataGetGlobalLongShortAccountRatio(params))

    async def fetch_leverage_brackets(self, pair: str) -> list[dict[str, Any]]:
        tiers = await self._read("fetch_leverage_tiers", Priority.ACCOUNT,
                                 lambda: self.ccxt.fetch_leverage_tiers([pair]))
        return tiers.get(pair, [])

    async def fetch_maintenance_windows(self) -> list[dict[str, Any]] | None:
        """Announced maintenance windows (``start_ms``, ``end_ms``, ``title``) from the host's schedule feed,
        ``GET <api_url>/bsmart/v1/maintenance``, which the simulator serves; None against Binance itself, which
        announces maintenance on its announcement pages and has no API for the schedule (trader/risk/maintenance.py
        says where the windows come from then). Only the 24 h ticker's weight class: one light read."""
        if not self.options.api_url:
            return None
        url = self.options.api_url.rstrip("/") + "/bsmart/v1/maintenance"
        answer = await self._read("fetch_maintenance", Priority.MARKET_DATA, lambda: self.ccxt.fetch(url, "GET"))
        rows = answer.get("windows") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            raise ExchangeError(classify_code(None, None, f"maintenance feed: unexpected answer {str(answer)[:200]}"),
                                "fetch_maintenance")
        return rows

    async def fetch_quote_volume_24h(self, pair: str) -> float:
        """The pair's 24 h quote volume (GET /fapi/v1/ticker/24hr, weight 1): the liquidity tiers' yardstick."""
        row = await self._read("fetch_ticker", Priority.MARKET_DATA,
                               lambda: self.ccxt.fapiPublicGetTicker24hr({"symbol": exchange_symbol(pair)}))
        return float(row.get("quoteVolume") or 0.0)

    # -- writes -----------------------------------------------------------------------------------------------------
    async def set_leverage(self, pair: str, leverage: int) -> None:
        await self._read("set_leverage", Priority.ACCOUNT, lambda: self.ccxt.set_leverage(leverage, pair))

    async def create_order(self, request: OrderRequest, *, max_wait_s: float | None = None,
                           still_wanted: StillWanted | None = None) -> OrderState:
        """Place an order exactly once.

        On any failure that leaves the outcome unknown (timeout, 5xx, a duplicate-id rejection), the order is
        looked up by its client id; only when several lookups agree it does not exist is it sent again, under the
        same id.

        Rate limits: stops and reduce-only exits (``Priority.PROTECT``) are not held behind a pause other requests
        caused; a 429 on the order itself is retried briefly. When the order cannot go within ``max_wait_s``
        (default: the gate's bound for its priority) ``RateLimited`` is raised: it was not sent, and its message
        says for how long sending is blocked. ``still_wanted(request)`` (sync or async), when given, is asked before
        any send that follows a hold-up (a wait in the gate of ``recheck_after_wait_s`` or more, or a resend); when
        it answers False, ``OrderNotWanted`` is raised and nothing is sent: re-check the position there.
        """
        priority = Priority.PROTECT if (request.reduce_only or request.close_position) else Priority.ENTRY
        if request.type in DIRECT_TYPES:
            def send() -> Awaitable[dict[str, Any]]:
                return self._post_order(request)
        else:
            symbol_args = request.ccxt_args(self.ccxt)

            def send() -> Awaitable[dict[str, Any]]:
                return self.ccxt.create_order(*symbol_args)
        attempts = self.options.backoff.attempts
        sends = 0

        async def before_send(waited_s: float) -> None:
            nonlocal sends
            sends += 1
            if still_wanted is None or (sends == 1 and waited_s < self.options.recheck_after_wait_s):
                return
            answer = still_wanted(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if not answer:
                log.warning("%s held back (%.2fs) and no longer wanted: not sent", request.client_order_id, waited_s)
                raise OrderNotWanted(request)

        for attempt in range(1, attempts + 1):
            try:
                raw = await self._throttled("create_order", priority, send, max_wait_s=max_wait_s,
                                            before_send=before_send)
                return OrderState.from_ccxt(raw, is_algo=request.is_algo)
            except (RateLimited, OrderNotWanted):
                raise
            except ExchangeError as exc:
                if not_sent(exc):
                    raise  # the rate limiter refused it: certainly not placed, and retried briefly already
                duplicate = exc.info.code in DUPLICATE_CLIENT_ID
                if not (exc.info.retryable or exc.info.state_unknown or duplicate):
                    raise
                found, certain = await self._resolve(request)
                if found is not None:
                    log.warning("%s: outcome was unknown (%s); found it on the exchange", request.client_order_id, exc)
                    return found
                if not certain:
                    # The lookups failed too: the order may exist. Sending again could double the position.
                    log.error("%s: outcome unknown and lookups failed; not sending again", request.client_order_id)
                    raise
                if duplicate or attempt == attempts:
                    raise
                delay = max(self.options.backoff.delay(attempt), exc.info.retry_after_s or 0.0)
                log.warning("%s not placed (%s); sending again in %.2fs", request.client_order_id, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _post_order(self, request: OrderRequest) -> dict[str, Any]:
        """A market or limit order with the body built here (trader/exchange/order_body.py) and signed here
        (``BinanceUSDM.post_signed``), sent through ccxt's ``fetch`` and parsed as its create_order would."""
        ex = self.ccxt
        if ex.markets is None:
            await ex.load_markets()
        body = order_body(request, ex)
        raw = await ex.post_signed("order", body)
        return ex.parse_order(raw, ex.market(request.pair))

    async def find_order(self, request: OrderRequest) -> OrderState | None:
        """After create_order raised with an unknown outcome, the engine resolves the order here, by client id.

        Never call create_order again for the same request instead: a filled market order no longer blocks its
        client id, so a second send would be a second order.
        """
        found, certain = await self._resolve(request)
        if found is None and not certain:
            raise ExchangeError(classify_code(-1007, 408, f"{request.client_order_id}: state still unknown"), "find_order")
        return found

    async def _resolve(self, request: OrderRequest) -> tuple[OrderState | None, bool]:
        """Look the order up by client id: (order, True) found; (None, True) the exchange says it does not exist
        on every lookup; (None, False) a lookup failed, so nothing is known."""
        for attempt in range(self.options.resolve_attempts):
            try:
                found = await self.fetch_order(request.pair, request.client_order_id, algo=request.is_algo)
            except ExchangeError as exc:
                log.warning("lookup of %s failed: %s", request.client_order_id, exc)
                return None, False
            if found is not None:
                return found, True
            # An order can take a moment to become visible to queries after an unknown-outcome answer.
            await asyncio.sleep(self.options.resolve_delay_s * (attempt + 1))
        return None, True

    async def cancel_order(self, pair: str, order_id: str, *, algo: bool) -> bool:
        """Cancel; False when the order was already gone (filled, cancelled or unknown)."""
        params = {"trigger": True} if algo else {}
        try:
            await self._read("cancel_order", Priority.PROTECT, lambda: self.ccxt.cancel_order(order_id, pair, params))
            return True
        except ExchangeError as exc:
            if exc.info.not_found:
                return False
            raise

    async def cancel_orders(self, pair: str, order_ids: list[str]) -> int:
        """Cancel several regular orders in one request per 10 (Binance's batch limit); returns how many were
        cancelled. Conditional (algo) orders have no batch endpoint: use cancel_order or cancel_all for those."""
        cancelled = 0
        for start in range(0, len(order_ids), 10):
            chunk = order_ids[start : start + 10]
            results = await self._read("cancel_orders", Priority.PROTECT,
                                       lambda c=chunk: self.ccxt.cancel_orders(c, pair))
            cancelled += sum(1 for r in results if str(r.get("status")) == "canceled")
        return cancelled

    async def cancel_all(self, pair: str) -> None:
        """Cancel every open regular and conditional order on a pair."""
        symbol = exchange_symbol(pair)
        await self._read("cancel_all", Priority.PROTECT,
                         lambda: self.ccxt.fapiPrivateDeleteAllOpenOrders({"symbol": symbol}))
        await self._read("cancel_all", Priority.PROTECT,
                         lambda: self.ccxt.fapiPrivateDeleteAlgoOpenOrders({"symbol": symbol}))

    # -- the account's own statement: fills and income (what a resync and the ledger check trust) -------------------
    async def user_stream_key(self) -> str:
        """A listen key for the user-data stream (POST returns the active key and extends it)."""
        raw = await self._read("listen_key", Priority.ACCOUNT, lambda: self.ccxt.fapiPrivatePostListenKey())
        return str(raw["listenKey"])

    async def keep_user_stream_alive(self) -> None:
        await self._read("listen_key", Priority.ACCOUNT, lambda: self.ccxt.fapiPrivatePutListenKey())

    async def fetch_user_trades(self, pair: str, since_ms: int | None = None, *,
                                order_id: str | None = None) -> list[UserTrade]:
        """The account's fills on ``pair`` (GET /fapi/v1/userTrades), oldest first, every page from ``since_ms``."""
        symbol = exchange_symbol(pair)
        out: list[UserTrade] = []
        from_id: int | None = None
        while True:
            params: dict[str, Any] = {"symbol": symbol, "limit": 1000}
            if order_id is not None:
                params["orderId"] = order_id
            elif from_id is not None:
                params["fromId"] = from_id
            elif since_ms is not None:
                params["startTime"] = since_ms
            rows = await self._read("fetch_my_trades", Priority.ACCOUNT,
                                    lambda p=params: self.ccxt.fapiPrivateGetUserTrades(p))
            page = [UserTrade.from_api(pair, r) for r in rows]
            out.extend(t for t in page if from_id is None or int(t.id) >= from_id)
            if order_id is not None or len(rows) < 1000:
                break
            from_id = max(int(t.id) for t in page) + 1
        seen: set[str] = set()
        unique = [t for t in out if not (t.id in seen or seen.add(t.id))]
        return sorted(unique, key=lambda t: (t.time_ms, int(t.id)))

    async def fetch_order_by_id(self, pair: str, order_id: str) -> OrderState | None:
        """A regular order by Binance's id (a fill's orderId names no client id)."""
        try:
            raw = await self._read("fetch_order", Priority.ACCOUNT, lambda: self.ccxt.fetch_order(order_id, pair))
        except ExchangeError as exc:
            if exc.info.not_found:
                return None
            raise
        return OrderState.from_ccxt(raw, is_algo=False)

    async def fetch_income(self, since_ms: int, until_ms: int | None = None) -> list[dict[str, Any]]:
        """Every wallet movement since ``since_ms`` (GET /fapi/v1/income): realised PnL, commission, funding, ...;
        Binance's raw rows (symbol, incomeType, income, time, tranId), every page."""
        out: list[dict[str, Any]] = []
        start = since_ms
        while True:
            params: dict[str, Any] = {"startTime": start, "limit": 1000}
            if until_ms is not None:
                params["endTime"] = until_ms
            rows = await self._read("fetch_funding_history", Priority.ACCOUNT,
                                    lambda p=params: self.ccxt.fapiPrivateGetIncome(p))
            out.extend(rows)
            if len(rows) < 1000:
                break
            newest = max(int(r["time"]) for r in rows)
            start = newest if newest > start else start + 1  # same-ms rows repeat at a page edge: deduped below
        seen: set[str] = set()
        return [r for r in out if not (f"{r.get('tranId')}:{r.get('incomeType')}:{r.get('symbol')}" in seen
                                        or seen.add(f"{r.get('tranId')}:{r.get('incomeType')}:{r.get('symbol')}"))]

    # -- helpers ----------------------------------------------------------------------------------------------------
    def market(self, pair: str) -> dict[str, Any]:
        return self.ccxt.market(pair)

    def amount_to_precision(self, pair: str, amount: Decimal) -> Decimal:
        """Truncate to the step size, as Binance requires (never round up past what margin allows)."""
        return Decimal(self.ccxt.amount_to_precision(pair, str(amount)))

    def price_to_precision(self, pair: str, price: Decimal) -> Decimal:
        return Decimal(self.ccxt.price_to_precision(pair, str(price)))
