"""The exchange engine: order placement and validation, matching against the synthesized book, resting limit
fills, algo (conditional) order triggers, funding settlements, margin calls and liquidation.

Time only moves through ``advance(now)``: it walks every symbol's price path corner by corner (see market.py) and,
inside each straight segment, executes whatever crosses first — a limit, a stop, a liquidation price — at the exact
instant and price where it crosses, then carries on from there. Requests call ``advance`` before acting, so the
account a request sees is the account at that simulated instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

from trader.sim import account as acct
from trader.sim.account import ZERO, Account, Summary, liquidation_price, q8, summarize
from trader.sim.book import Book, synthesize, walk
from trader.sim.brackets import Bracket, maintenance_margin, max_leverage, max_notional, table_for
from trader.sim.config import SimConfig
from trader.sim.errors import BinanceError, err
from trader.sim.filters import (
    SymbolSpec,
    check_min_notional,
    check_percent_price,
    check_price,
    check_quantity,
    parse_decimal,
    spec_for,
)
from trader.sim.market import Clock, SymbolData
from trader.sim.orders import AlgoOrder, Income, Order, Trade, fs

Event = dict[str, object]
ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")
MAX_ALGO_OPEN = 200
_ID_RE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


class Seq:
    """An id sequence whose position can be saved and restored (``--state``)."""

    def __init__(self, start: int):
        self.value = start

    def __next__(self) -> int:
        v = self.value
        self.value += 1
        return v


def _bool(v: object) -> bool:
    return str(v).lower() == "true"


def _valid_client_id(cid: str) -> bool:
    return 1 <= len(cid) <= 36 and set(cid) <= _ID_RE_CHARS


class Exchange:
    def __init__(self, cfg: SimConfig, data: dict[str, SymbolData], clock: Clock):
        self.cfg = cfg
        self.data = data
        self.clock = clock
        self.specs: dict[str, SymbolSpec] = {}
        self.tables: dict[str, list[Bracket]] = {}
        now = clock.now_ms()
        for sym, d in data.items():
            # The same rule snapshots a backtest reads (nearest the simulated time), as Decimal.
            self.specs[sym] = spec_for(sym, d.pair.split("/")[0], "USDT", float(d.o[-1]), cfg.data_dir, now)
            self.tables[sym] = table_for(sym, cfg.data_dir, now)
        self.account = Account(wallet=Decimal(cfg.balance), update_time=now)
        self.leverage: dict[str, int] = {s: min(cfg.default_leverage, max_leverage(self.tables[s])) for s in data}
        self.margin_type: dict[str, str] = {s: "CROSSED" for s in data}
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, AlgoOrder] = {}
        # Open orders indexed apart from the full history, which only grows: hot paths must not scan it.
        self._books: dict[tuple, Book] = {}
        # Triggered STOP/TAKE_PROFIT (limit) algos wait for their engine order to finish.
        self._algo_by_order: dict[int, AlgoOrder] = {}
        self._open: dict[int, Order] = {}
        self._open_algos: dict[int, AlgoOrder] = {}
        self.trades: list[Trade] = []
        self.income: list[Income] = []
        self._ids = Seq(4_000_000_001)
        self._trade_ids = Seq(600_000_001)
        self._tran_ids = Seq(9_000_000_001)
        self.processed_ms = now
        # The last funding settlement applied. A settlement at instant T is applied once the clock has moved past
        # T, after every fill stamped T (binance-futures.md §4: a position opened at T pays, one closed at T does
        # not); a settlement at the start instant belongs to the past.
        self.last_settled_ms = now
        self.seg: dict[str, tuple[int, float, float]] = {s: (now, d.price(now), d.mark(now)) for s, d in data.items()}
        self.listeners: list[Callable[[Event], None]] = []
        self.margin_call_armed = True
        self._add_income("", "TRANSFER", Decimal(cfg.balance), now, info="initial deposit")

    # ---- prices -----------------------------------------------------------------------------------------------
    def _sym(self, symbol: object) -> str:
        s = str(symbol or "").upper()
        if s not in self.data:
            raise err(-1121)
        return s

    def last_price(self, sym: str, t: int | None = None) -> Decimal:
        t = self.processed_ms if t is None else t
        return self.specs[sym].round_price(self.data[sym].price(t))

    def mark_price(self, sym: str, t: int | None = None) -> Decimal:
        t = self.processed_ms if t is None else t
        return self.specs[sym].round_price(self.data[sym].mark(t))

    def marks(self) -> dict[str, Decimal]:
        return {s: self.mark_price(s) for s in self.data}

    def book(self, sym: str, t: int | None = None, price: float | None = None) -> Book:
        t = self.processed_ms if t is None else t
        d = self.data[sym]
        px = d.price(t) if price is None else price
        vol = d.volatility(t)
        c = self.cfg.book_by_symbol.get(sym, self.cfg.book)
        key = (sym, px, vol, t // 60_000, c.spread_bps, c.levels, c.level_step_bps, c.level_notional,
               c.volatility_thinning)
        book = self._books.get(key)
        if book is None:
            # Synthesis costs ~0.4 ms; the same instant's book is asked for several times per request.
            if len(self._books) > 256:
                self._books.clear()
            book = self._books[key] = synthesize(self.specs[sym], c, px, vol, t)
        return book

    # ---- open-order index ----------------------------------------------------------------------------------------
    def add_order(self, o: Order) -> None:
        self.orders[o.order_id] = o
        self._open[o.order_id] = o

    def add_algo(self, a: AlgoOrder) -> None:
        self.algos[a.algo_id] = a
        self._open_algos[a.algo_id] = a

    def reindex(self) -> None:
        self._open = {k: o for k, o in self.orders.items() if o.is_open}
        self._open_algos = {k: a for k, a in self.algos.items() if a.is_open}
        self._algo_by_order = {a.actual_order_id: a for a in self.algos.values()
                               if a.status == "TRIGGERED" and a.actual_order_id in self._open}

    def live_orders(self, sym: str | None = None) -> list[Order]:
        for k in [k for k, o in self._open.items() if not o.is_open]:
            del self._open[k]
        return [o for o in self._open.values() if sym is None or o.symbol == sym]

    def live_algos(self, sym: str | None = None) -> list[AlgoOrder]:
        for k in [k for k, a in self._open_algos.items() if not a.is_open]:
            del self._open_algos[k]
        return [a for a in self._open_algos.values() if sym is None or a.symbol == sym]

    # ---- events -----------------------------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        for fn in list(self.listeners):
            fn(event)

    def _order_event(self, o: Order, exec_type: str, t: int, last_qty: Decimal = ZERO, last_px: Decimal = ZERO,
                     fee: Decimal = ZERO, trade_id: int = 0, maker: bool = False, rp: Decimal = ZERO) -> None:
        self._emit({
            "e": "ORDER_TRADE_UPDATE", "E": t, "T": t,
            "o": {
                "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.tif, "q": fs(o.orig_qty),
                "p": fs(o.price), "ap": fs(o.avg_price), "sp": fs(o.stop_price), "x": exec_type, "X": o.status,
                "i": o.order_id, "l": fs(last_qty), "z": fs(o.executed), "L": fs(last_px), "N": "USDT",
                "n": fs(fee), "T": t, "t": trade_id, "b": "0", "a": "0", "m": maker, "R": o.reduce_only,
                "wt": o.working_type, "ot": o.orig_type or o.type, "ps": o.position_side, "cp": o.close_position,
                "rp": fs(rp), "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": o.good_till,
            },
        })

    def _algo_event(self, a: AlgoOrder, t: int) -> None:
        self._emit({
            "e": "ALGO_UPDATE", "T": t, "E": t,
            "o": {
                "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.order_type, "s": a.symbol,
                "S": a.side, "ps": a.position_side, "f": a.tif, "q": fs(a.qty), "X": a.status,
                "ai": str(a.actual_order_id) if a.actual_order_id else "", "ap": fs(a.actual_price),
                "aq": "0", "act": "0", "tp": fs(a.trigger_price), "p": fs(a.price), "V": "EXPIRE_MAKER",
                "wt": a.working_type, "pm": "NONE", "cp": a.close_position, "pP": a.price_protect,
                "R": a.reduce_only, "tt": a.trigger_time, "gtd": a.good_till, "rm": "",
            },
        })

    def _account_event(self, reason: str, t: int, symbols: list[str]) -> None:
        positions = []
        for s in symbols:
            p = self.account.position(s, self.leverage[s])
            m = self.mark_price(s, t)
            positions.append({
                "s": s, "pa": fs(p.amt), "ep": fs(q8(p.entry)), "bep": fs(q8(p.entry)), "cr": "0",
                "up": fs(q8(p.unrealized(m))), "mt": "isolated" if p.isolated else "cross",
                "iw": fs(q8(p.isolated_wallet)), "ps": "BOTH", "ma": "USDT",
            })
        self._emit({
            "e": "ACCOUNT_UPDATE", "E": t, "T": t,
            "a": {"m": reason, "B": [{"a": "USDT", "wb": fs(q8(self.account.wallet)),
                                     "cw": fs(q8(self.account.cross_wallet())), "bc": "0"}], "P": positions},
        })

    def _add_income(self, sym: str, kind: str, amount: Decimal, t: int, trade_id: int = 0, info: str = "") -> None:
        if amount != 0:
            self.income.append(Income(next(self._tran_ids), sym, kind, amount, t, str(trade_id or ""), info))

    # ---- margin helpers ---------------------------------------------------------------------------------------
    def open_order_im(self) -> dict[str, Decimal]:
        """Initial margin held by resting non-reduce-only limits, netted against the position they would close.
        Binance holds margin for the heavier side only, since both sides cannot add exposure at once."""
        out: dict[str, Decimal] = {}
        for sym in self.data:
            amt = self.account.positions[sym].amt if sym in self.account.positions else ZERO
            buy_q = buy_n = sell_q = sell_n = ZERO
            for o in self.live_orders(sym):
                if o.reduce_only or o.type != "LIMIT":
                    continue
                if o.side == "BUY":
                    buy_q += o.remaining
                    buy_n += o.remaining * o.price
                else:
                    sell_q += o.remaining
                    sell_n += o.remaining * o.price
            lev = self.leverage[sym]
            buy_open = max(ZERO, buy_q - max(ZERO, -amt))
            sell_open = max(ZERO, sell_q - max(ZERO, amt))
            buy_im = buy_n / buy_q * buy_open / lev if buy_q else ZERO
            sell_im = sell_n / sell_q * sell_open / lev if sell_q else ZERO
            im = max(buy_im, sell_im)
            if im:
                out[sym] = im
        return out

    def summary(self) -> Summary:
        return summarize(self.account, self.marks(), self.tables, self.open_order_im())

    def liq_price(self, sym: str, marks: dict[str, Decimal] | None = None) -> Decimal | None:
        return liquidation_price(self.account, sym, marks or self.marks(), self.tables)

    def position_cap_exceeded(self, sym: str, side: str, qty: Decimal, exclude: Order | None = None) -> bool:
        """−2027: would the position, with every resting opening order on ``side`` and this ``qty`` filled, be
        worth more at the mark than ``maxNotionalValue`` at the symbol's leverage? Checked when an order is placed
        (a conditional one when it triggers), never at its fill. Orders that only reduce are exempt."""
        pos = self.account.position(sym, self.leverage[sym])
        direction = 1 if side == "BUY" else -1
        closing = min(qty, abs(pos.amt)) if pos.amt != 0 and (pos.amt > 0) != (direction > 0) else ZERO
        if qty - closing <= 0:
            return False
        resting = sum((o.remaining for o in self.live_orders(sym)
                       if o is not exclude and o.side == side and o.type == "LIMIT" and not o.reduce_only), ZERO)
        new_notional = abs(pos.amt + direction * (resting + qty)) * self.mark_price(sym)
        return new_notional > max_notional(self.tables[sym], self.leverage[sym])

    def _check_margin(self, sym: str, side: str, qty: Decimal, price: Decimal, exclude: Order | None = None) -> None:
        pos = self.account.position(sym, self.leverage[sym])
        signed = qty if side == "BUY" else -qty
        closing = min(qty, abs(pos.amt)) if pos.amt != 0 and (pos.amt > 0) != (signed > 0) else ZERO
        opening = qty - closing
        if opening <= 0:
            return
        lev = self.leverage[sym]
        mark = self.mark_price(sym)
        if self.position_cap_exceeded(sym, side, qty, exclude):
            raise err(-2027)
        direction = 1 if side == "BUY" else -1
        open_loss = opening * abs(min(ZERO, direction * (mark - price)))
        cost = opening * price / lev + open_loss
        if cost > self.summary().available:
            raise err(-2019)

    # ---- time -------------------------------------------------------------------------------------------------
    def advance(self, now: int | None = None) -> None:
        now = self.clock.now_ms() if now is None else now
        if now <= self.processed_ms:
            return
        events: list[tuple[int, int, str]] = []
        for sym, d in self.data.items():
            events.extend((t, 0, sym) for t in d.path_points(self.processed_ms, now))
        first = next(iter(self.data.values()))
        # Settlements in [processed_ms, now): one at ``now`` itself waits until every fill stamped ``now`` is in
        # (an order placed at the settlement instant trades before it), one at ``processed_ms`` was deferred so.
        events.extend((t, 1, "") for t in first.funding_times(self.processed_ms - 1, now - 1)
                      if t > self.last_settled_ms)
        events.sort()
        for t, kind, sym in events:
            if kind == 0:
                self._segment(sym, t)
            else:
                self._settle_funding(t)
            self.processed_ms = max(self.processed_ms, t)
        self.processed_ms = now

    def _segment(self, sym: str, t1: int) -> None:
        d = self.data[sym]
        t0, p0, m0 = self.seg[sym]
        if t1 <= t0:
            return
        p1, m1 = d.price(t1), d.mark(t1)
        if d.script is not None and d.script.active(t1):
            if t1 - t1 % d.bar_ms not in d.scripted_bars:
                d.record_scripted(t1, p0)  # the bar opens where the price was before the script moved it
            d.record_scripted(t1, p1)
        for _ in range(1000):
            hit = self._first_crossing(sym, t0, p0, m0, t1, p1, m1)
            if hit is None:
                break
            tc, frac, action = hit
            pc = p0 + (p1 - p0) * frac
            mc = m0 + (m1 - m0) * frac
            self.processed_ms = max(self.processed_ms, tc)
            action(tc, pc, mc)
            t0, p0, m0 = tc, pc, mc
        self._trail_extremes(sym, p0, m0, p1, m1)
        self.seg[sym] = (t1, p1, m1)
        self.processed_ms = max(self.processed_ms, t1)
        for o in [o for o in self.live_orders(sym) if o.good_till and o.good_till <= t1]:
            o.status, o.update_time = "EXPIRED", t1
            self._order_event(o, "EXPIRED", t1)
        self._check_margin_call(t1)

    def _first_crossing(self, sym: str, t0: int, p0: float, m0: float, t1: int, p1: float, m1: float
                        ) -> tuple[int, float, Callable[[int, float, float], None]] | None:
        """The earliest thing the segment (t0,p0,m0)→(t1,p1,m1) triggers, as (time, fraction, action)."""
        best: tuple[float, Callable[[int, float, float], None]] | None = None

        def consider(v0: float, v1: float, level: float, rising: bool, action: Callable[[int, float, float], None]
                     ) -> None:
            nonlocal best
            if rising:
                if max(v0, v1) < level:
                    return
                frac = 0.0 if v0 >= level else (level - v0) / (v1 - v0)
            else:
                if min(v0, v1) > level:
                    return
                frac = 0.0 if v0 <= level else (level - v0) / (v1 - v0)
            if best is None or frac < best[0]:
                best = (frac, action)

        for o in self.live_orders(sym):
            if o.type == "LIMIT":
                # A resting buy fills when the price comes down to it, a sell when it comes up.
                consider(p0, p1, float(o.price), o.side == "SELL", self._limit_action(o))
        for a in self.live_algos(sym):
            v0, v1 = (m0, m1) if a.working_type == "MARK_PRICE" else (p0, p1)
            if a.order_type == "TRAILING_STOP_MARKET":
                self._consider_trailing(a, v0, v1, consider)
                continue
            up = (a.side == "BUY") == (a.order_type in ("STOP", "STOP_MARKET"))
            consider(v0, v1, float(a.trigger_price), up, self._trigger_action(a))
        pos = self.account.positions.get(sym)
        if pos is not None and pos.amt != 0:
            marks = {s: (self.mark_price(s) if s != sym else self.specs[s].round_price(m0)) for s in self.data}
            lp = liquidation_price(self.account, sym, marks, self.tables)
            if lp is not None:
                consider(m0, m1, float(lp), pos.amt < 0, self._liquidation_action(sym, lp))
        if best is None:
            return None
        frac = best[0]
        return t0 + int((t1 - t0) * frac), frac, best[1]

    def _consider_trailing(self, a: AlgoOrder, v0: float, v1: float, consider: Callable[..., None]) -> None:
        sell = a.side == "SELL"
        if not a.activated:
            def activate(tc: int, pc: float, mc: float) -> None:
                a.activated = True
                a.extreme = a.activate_price
                a.update_time = tc
            consider(v0, v1, float(a.activate_price), sell, activate)
            return
        rate = float(a.callback_rate) / 100
        if sell:
            ext = max(float(a.extreme), v0)
            if v1 < v0:
                consider(v0, v1, ext * (1 - rate), False, self._trigger_action(a))
        else:
            ext = min(float(a.extreme), v0)
            if v1 > v0:
                consider(v0, v1, ext * (1 + rate), True, self._trigger_action(a))

    def _trail_extremes(self, sym: str, p0: float, m0: float, p1: float, m1: float) -> None:
        for a in self.live_algos(sym):
            if a.order_type == "TRAILING_STOP_MARKET" and a.activated:
                v0, v1 = (m0, m1) if a.working_type == "MARK_PRICE" else (p0, p1)
                spec = self.specs[sym]
                if a.side == "SELL":
                    a.extreme = max(a.extreme, spec.round_price(max(v0, v1)))
                else:
                    a.extreme = min(a.extreme, spec.round_price(min(v0, v1)))

    def _limit_action(self, o: Order) -> Callable[[int, float, float], None]:
        def act(tc: int, pc: float, mc: float) -> None:
            qty = self._reducible(o.symbol, o.side, o.remaining) if o.reduce_only else o.remaining
            if qty <= 0:
                o.status, o.update_time = "EXPIRED", tc
                self._order_event(o, "EXPIRED", tc)
                return
            self._fill(o, o.price, qty, maker=True, t=tc)
        return act

    def _trigger_action(self, a: AlgoOrder) -> Callable[[int, float, float], None]:
        def act(tc: int, pc: float, mc: float) -> None:
            self._trigger(a, tc, pc)
        return act

    def _liquidation_action(self, sym: str, lp: Decimal) -> Callable[[int, float, float], None]:
        def act(tc: int, pc: float, mc: float) -> None:
            self._liquidate(sym, lp, tc)
        return act

    # ---- fills ------------------------------------------------------------------------------------------------
    def _reducible(self, sym: str, side: str, qty: Decimal) -> Decimal:
        """How much of ``qty`` on ``side`` would reduce the current position (0 when it would not)."""
        pos = self.account.position(sym, self.leverage[sym])
        if pos.amt == 0 or (pos.amt > 0) == (side == "BUY"):
            return ZERO
        return min(qty, abs(pos.amt))

    def _fill(self, o: Order, price: Decimal, qty: Decimal, maker: bool, t: int) -> None:
        rate = self.cfg.maker_fee if maker else self.cfg.taker_fee
        fee = q8(price * qty * rate)
        pos = self.account.position(o.symbol, self.leverage[o.symbol])
        pos.leverage = self.leverage[o.symbol]
        pos.margin_type = self.margin_type[o.symbol] if pos.amt == 0 else pos.margin_type
        res = self.account.apply_fill(o.symbol, o.side, qty, price, fee, t)
        o.executed += qty
        o.cum_quote += price * qty
        o.realized_pnl += res.realized_pnl
        o.status = "FILLED" if o.executed >= o.orig_qty else "PARTIALLY_FILLED"
        o.update_time = t
        tid = next(self._trade_ids)
        self.trades.append(Trade(tid, o.order_id, o.symbol, o.side, price, qty, q8(res.realized_pnl), fee, maker, t))
        self._add_income(o.symbol, "REALIZED_PNL", q8(res.realized_pnl), t, tid)
        self._add_income(o.symbol, "COMMISSION", -fee, t, tid)
        self._order_event(o, "TRADE", t, qty, price, fee, tid, maker, q8(res.realized_pnl))
        algo = self._algo_by_order.pop(o.order_id, None) if not o.is_open else None
        if algo is not None:
            algo.status, algo.actual_price, algo.update_time = "FINISHED", o.avg_price, t
            self._algo_event(algo, t)
        self._account_event("ORDER", t, [o.symbol])
        if self.account.positions[o.symbol].amt == 0:
            self._close_position_orders(o.symbol, t)

    def _close_position_orders(self, sym: str, t: int) -> None:
        """With the position gone, closePosition stops have nothing left to do; Binance expires them."""
        for a in self.live_algos(sym):
            if a.close_position:
                a.status, a.update_time = "EXPIRED", t
                self._algo_event(a, t)

    def _take(self, o: Order, t: int, price: float | None = None, limit: Decimal | None = None) -> None:
        """Fill ``o`` as taker against the book at ``t``: walk levels, up to ``limit`` if given."""
        qty = o.remaining
        if o.reduce_only:
            qty = self._reducible(o.symbol, o.side, qty)
        book = self.book(o.symbol, t, price)
        levels = book.asks if o.side == "BUY" else book.bids
        for p, q in walk(levels, qty, limit, o.side):
            self._fill(o, p, q, maker=False, t=t)

    # ---- placing orders ---------------------------------------------------------------------------------------
    def _common(self, params: dict[str, str]) -> tuple[str, str, SymbolSpec]:
        sym = self._sym(params.get("symbol"))
        side = str(params.get("side", "")).upper()
        if side not in ("BUY", "SELL"):
            raise err(-1117) if side else err(-1102, "side")
        ps = str(params.get("positionSide", "BOTH")).upper()
        if self.account.dual_side:
            # Hedge-mode accounting is not modelled: one-way is the product's mode and the only one simulated.
            raise BinanceError(-4061, "Order's position side does not match user's setting. "
                                      "(the simulator trades in one-way mode only)")
        if ps != "BOTH":
            raise err(-4061)
        if self.account.in_liquidation:
            raise err(-2023)
        return sym, side, self.specs[sym]

    def _client_id(self, params: dict[str, str], key: str) -> str:
        cid = params.get(key) or f"sim{next(self._ids)}"
        if not _valid_client_id(cid):
            raise err(-1100)
        return cid

    def place_order(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        sym, side, spec = self._common(params)
        otype = str(params.get("type", "")).upper()
        if otype in ALGO_TYPES:
            raise err(-4120)
        if otype not in ("LIMIT", "MARKET"):
            raise err(-1116) if otype else err(-1102, "type")
        cid = self._client_id(params, "newClientOrderId")
        if any(o.client_id == cid for o in self.live_orders()):
            raise err(-4116)
        qty = parse_decimal(params.get("quantity"), "quantity")
        reduce_only = _bool(params.get("reduceOnly", "false"))
        tif = "GTC"
        price = ZERO
        good_till = 0
        mark = self.mark_price(sym)
        if otype == "LIMIT":
            tif = str(params.get("timeInForce", "")).upper()
            if not tif:
                raise err(-1102, "timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
                raise err(-1115)
            price = parse_decimal(params.get("price"), "price")
            if tif == "GTD":
                good_till = int(parse_decimal(params.get("goodTillDate"), "goodTillDate"))
            check_price(spec, price)
        elif params.get("price") not in (None, ""):
            raise err(-1106, "price")
        check_quantity(spec, qty, market=otype == "MARKET")
        book = self.book(sym)
        best = book.asks[0][0] if side == "BUY" else book.bids[0][0]
        if otype == "LIMIT":
            check_percent_price(spec, side, price, mark)
        elif (side == "BUY" and best > mark * spec.multiplier_up) or (
                side == "SELL" and best < mark * spec.multiplier_down):
            raise err(-4131)
        if reduce_only and self._reducible(sym, side, qty) <= 0:
            raise err(-2022)
        ref = price if otype == "LIMIT" else self.last_price(sym)
        check_min_notional(spec, qty, ref, reduce_only)
        if len(self.live_orders(sym)) >= spec.max_num_orders:
            raise err(-2025)
        marketable = otype == "MARKET" or (price >= best if side == "BUY" else price <= best)
        if otype == "LIMIT" and tif == "GTX" and marketable:
            raise err(-5022)
        if not reduce_only:
            est = price
            if otype == "MARKET":
                fills = walk(book.asks if side == "BUY" else book.bids, qty, None, side)
                got = sum((q for _, q in fills), ZERO)
                est = sum((p * q for p, q in fills), ZERO) / got if got else best
            self._check_margin(sym, side, qty, est)
        if otype == "LIMIT" and tif == "FOK":
            levels = book.asks if side == "BUY" else book.bids
            if sum((q for _, q in walk(levels, qty, price, side)), ZERO) < qty:
                raise err(-5021)
        o = Order(next(self._ids), sym, cid, side, otype, tif, qty, price, reduce_only, now, now,
                  good_till=good_till)
        self.add_order(o)
        self._order_event(o, "NEW", now)
        if marketable:
            self._take(o, now, limit=price if otype == "LIMIT" else None)
        if o.is_open and (otype == "MARKET" or tif in ("IOC", "FOK")):
            o.status, o.update_time = "EXPIRED", now
            self._order_event(o, "EXPIRED", now)
        return o.to_api(with_time=False)

    def place_batch(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        """``POST /fapi/v1/batchOrders``: up to 5 orders as a JSON list; each answered in place (order or error)."""
        raw = params.get("batchOrders")
        if not raw:
            raise err(-1102, "batchOrders")
        try:
            batch = json.loads(raw)
        except ValueError:
            raise err(-1130, "batchOrders") from None
        if not isinstance(batch, list) or not 1 <= len(batch) <= 5 or not all(isinstance(b, dict) for b in batch):
            raise err(-1130, "batchOrders")
        out: list[dict[str, object]] = []
        for item in batch:
            try:
                out.append(self.place_order({k: str(v) for k, v in item.items()}, now))
            except BinanceError as e:
                out.append(e.body())
        return out

    def modify_order(self, params: dict[str, str], now: int) -> dict[str, object]:
        """``PUT /fapi/v1/order``: new price and quantity for an open LIMIT order. It loses its queue place; a
        post-only (GTX) amendment that would take is cancelled instead, as at Binance."""
        self.advance(now)
        o = self._find_order(params, -2013)
        if not o.is_open:
            raise err(-2013)
        if o.type != "LIMIT":
            raise err(-1116)
        side = str(params.get("side", o.side)).upper()
        if side != o.side:
            raise err(-1130, "side")
        spec = self.specs[o.symbol]
        qty = parse_decimal(params.get("quantity"), "quantity")
        price = parse_decimal(params.get("price"), "price")
        check_price(spec, price)
        check_quantity(spec, qty, market=False)
        if qty <= o.executed:
            raise err(-4003)
        check_percent_price(spec, side, price, self.mark_price(o.symbol))
        book = self.book(o.symbol)
        best = book.asks[0][0] if side == "BUY" else book.bids[0][0]
        marketable = price >= best if side == "BUY" else price <= best
        if qty - o.executed > o.remaining and not o.reduce_only:
            self._check_margin(o.symbol, side, qty - o.executed, price, exclude=o)
        o.orig_qty, o.price, o.update_time = qty, price, now
        if marketable and o.tif == "GTX":
            o.status = "EXPIRED"
            self._order_event(o, "EXPIRED", now)
            return o.to_api(with_time=False)
        self._order_event(o, "AMENDMENT", now)
        if marketable:
            self._take(o, now, limit=price)
        return o.to_api(with_time=False)

    def place_algo(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        algo_type = str(params.get("algoType", "")).upper()
        if algo_type != "CONDITIONAL":
            raise err(-1102, "algoType") if not algo_type else err(-1130, "algoType")
        sym, side, spec = self._common(params)
        otype = str(params.get("type", "")).upper()
        if otype not in ALGO_TYPES:
            raise err(-1116) if otype else err(-1102, "type")
        cid = self._client_id(params, "clientAlgoId")
        if any(a.client_algo_id == cid for a in self.live_algos()):
            raise err(-20132)
        if len(self.live_algos()) >= MAX_ALGO_OPEN:
            raise BinanceError(-4045, "Reach max stop order limit.")
        close_position = _bool(params.get("closePosition", "false"))
        reduce_only = _bool(params.get("reduceOnly", "false"))
        working = str(params.get("workingType", "CONTRACT_PRICE")).upper()
        if working not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise err(-1130, "workingType")
        if close_position:
            if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise err(-4136, otype, "true")
            if params.get("quantity") not in (None, ""):
                raise err(-1106, "quantity")
            if reduce_only:
                raise err(-1106, "reduceOnly")
            qty = ZERO
        else:
            qty = parse_decimal(params.get("quantity"), "quantity")
            check_quantity(spec, qty, market=otype.endswith("MARKET"))
        price = ZERO
        tif = str(params.get("timeInForce", "GTC")).upper()
        if otype in ("STOP", "TAKE_PROFIT"):
            price = parse_decimal(params.get("price"), "price")
            check_price(spec, price)
        cur = self.mark_price(sym) if working == "MARK_PRICE" else self.last_price(sym)
        trigger = act_px = rate = ZERO
        if otype == "TRAILING_STOP_MARKET":
            rate = parse_decimal(params.get("callbackRate"), "callbackRate")
            if not Decimal("0.1") <= rate <= Decimal("20"):
                raise err(-1130, "callbackRate")
            if params.get("activatePrice") not in (None, ""):
                act_px = parse_decimal(params.get("activatePrice"), "activatePrice")
                check_price(spec, act_px)
                if (side == "BUY" and act_px >= cur) or (side == "SELL" and act_px <= cur):
                    raise err(-2021)
        else:
            trigger = parse_decimal(params.get("triggerPrice"), "triggerPrice")
            check_price(spec, trigger)
            up = (side == "BUY") == (otype in ("STOP", "STOP_MARKET"))
            if (up and cur >= trigger) or (not up and cur <= trigger):
                raise err(-2021)
        ref = price or trigger or act_px or cur
        if not close_position:
            check_min_notional(spec, qty, ref, reduce_only)
        a = AlgoOrder(next(self._ids), cid, sym, side, otype, qty, trigger, price, tif, working, reduce_only,
                      close_position, now, now, activate_price=act_px, callback_rate=rate)
        if otype == "TRAILING_STOP_MARKET" and not act_px:
            a.activated, a.extreme = True, cur
        self.add_algo(a)
        self._algo_event(a, now)
        return a.to_api()

    def _trigger(self, a: AlgoOrder, t: int, price: float) -> None:
        """Hand a triggered conditional to the matching engine as a MARKET (or LIMIT for STOP/TAKE_PROFIT)."""
        a.status, a.trigger_time, a.update_time = "TRIGGERED", t, t
        sym = a.symbol
        pos = self.account.position(sym, self.leverage[sym])
        if a.close_position or a.reduce_only:
            qty = self._reducible(sym, a.side, abs(pos.amt) if a.close_position else a.qty)
            if qty <= 0:
                a.status = "EXPIRED"
                self._algo_event(a, t)
                return
        else:
            qty = a.qty
        otype = "LIMIT" if a.order_type in ("STOP", "TAKE_PROFIT") else "MARKET"
        o = Order(next(self._ids), sym, a.client_algo_id, a.side, otype, a.tif if otype == "LIMIT" else "GTC", qty,
                  a.price, a.reduce_only or a.close_position, t, t, close_position=a.close_position,
                  stop_price=a.trigger_price, working_type=a.working_type, orig_type=a.order_type)
        if not (a.reduce_only or a.close_position):
            try:
                self._check_margin(sym, a.side, qty, self.specs[sym].round_price(price))
            except BinanceError:
                a.status = "REJECTED"
                self._algo_event(a, t)
                return
        self.add_order(o)
        a.actual_order_id = o.order_id
        self._order_event(o, "NEW", t)
        book = self.book(sym, t, price)
        best = book.asks[0][0] if a.side == "BUY" else book.bids[0][0]
        if otype == "MARKET" or (o.price >= best if a.side == "BUY" else o.price <= best):
            self._take(o, t, price, limit=o.price if otype == "LIMIT" else None)
        if o.is_open and otype == "MARKET":
            o.status = "EXPIRED"
            self._order_event(o, "EXPIRED", t)
        a.actual_price = o.avg_price
        a.status = "FINISHED" if not o.is_open else "TRIGGERED"
        if o.is_open:
            self._algo_by_order[o.order_id] = a
        self._algo_event(a, t)

    # ---- cancel / query ---------------------------------------------------------------------------------------
    def _find_order(self, params: dict[str, str], missing_code: int) -> Order:
        sym = self._sym(params.get("symbol"))
        oid = params.get("orderId")
        cid = params.get("origClientOrderId")
        if not oid and not cid:
            raise err(-1102, "orderId")
        for o in (self.orders.values() if not oid else [self.orders.get(int(oid))]):
            if o is not None and o.symbol == sym and (not cid or o.client_id == cid):
                if oid or o.client_id == cid:
                    return o
        raise err(missing_code)

    def query_order(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        return self._find_order(params, -2013).to_api()

    def cancel_order(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        o = self._find_order(params, -2011)
        if not o.is_open:
            raise err(-2011)
        o.status, o.update_time = "CANCELED", now
        self._order_event(o, "CANCELED", now)
        return o.to_api(with_time=False)

    def cancel_batch(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        """``DELETE /fapi/v1/batchOrders``: up to 10 ids (``orderIdList`` or ``origClientOrderIdList``, JSON lists);
        each answered in place (the cancelled order or its error)."""
        sym = params.get("symbol")
        if not sym:
            raise err(-1102, "symbol")
        # Parameter names are matched case-insensitively here, as Binance does (ccxt sends them lower-case).
        lowered = {k.lower(): v for k, v in params.items()}
        by_id, by_client = lowered.get("orderidlist"), lowered.get("origclientorderidlist")
        if bool(by_id) == bool(by_client):
            raise err(-1102, "orderIdList")
        try:
            ids = json.loads(by_id or by_client or "")
        except ValueError:
            raise err(-1130, "orderIdList") from None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 10:
            raise err(-1130, "orderIdList")
        key = "orderId" if by_id else "origClientOrderId"
        out: list[dict[str, object]] = []
        for one in ids:
            try:
                out.append(self.cancel_order({"symbol": sym, key: str(one)}, now))
            except BinanceError as e:
                out.append(e.body())
        return out

    def cancel_all(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        for o in self.live_orders(sym):
            o.status, o.update_time = "CANCELED", now
            self._order_event(o, "CANCELED", now)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        sym = self._sym(params["symbol"]) if params.get("symbol") else None
        return [o.to_api() for o in self.live_orders(sym)]

    def all_orders(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        rows = [o for o in self.orders.values() if o.symbol == sym]
        rows = _window(rows, params, "time", id_attr="order_id", id_param="orderId")
        return [o.to_api() for o in rows]

    def _find_algo(self, params: dict[str, str]) -> AlgoOrder:
        aid = params.get("algoId")
        cid = params.get("clientAlgoId")
        if not aid and not cid:
            raise err(-1102, "algoId")
        for a in self.algos.values():
            if (aid and a.algo_id == int(aid)) or (not aid and a.client_algo_id == cid):
                if params.get("symbol") and a.symbol != str(params["symbol"]).upper():
                    continue
                return a
        raise err(-2013)

    def query_algo(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        return self._find_algo(params).to_api()

    def cancel_algo(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        try:
            a = self._find_algo(params)
        except BinanceError:
            raise err(-2011) from None
        if not a.is_open:
            raise err(-2011)
        a.status, a.update_time = "CANCELED", now
        self._algo_event(a, now)
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    def cancel_all_algos(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        for a in self.live_algos(sym):
            a.status, a.update_time = "CANCELED", now
            self._algo_event(a, now)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_algos(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        sym = self._sym(params["symbol"]) if params.get("symbol") else None
        return [a.to_api() for a in self.live_algos(sym)]

    def all_algos(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        rows = [a for a in self.algos.values() if a.symbol == sym]
        return [a.to_api() for a in _window(rows, params, "create_time", id_attr="algo_id", id_param="algoId")]

    def user_trades(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        rows = [t for t in self.trades if t.symbol == sym]
        if params.get("orderId"):
            rows = [t for t in rows if t.order_id == int(params["orderId"])]
        return [t.to_api() for t in _window(rows, params, "time", id_attr="id", id_param="fromId")]

    def income_history(self, params: dict[str, str], now: int) -> list[dict[str, object]]:
        self.advance(now)
        rows = list(self.income)
        if params.get("symbol"):
            rows = [r for r in rows if r.symbol == str(params["symbol"]).upper()]
        if params.get("incomeType"):
            rows = [r for r in rows if r.income_type == params["incomeType"]]
        return [r.to_api() for r in _window(rows, params, "time", default_limit=100)]

    # ---- settings ---------------------------------------------------------------------------------------------
    def set_leverage(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        raw = params.get("leverage")
        if raw in (None, ""):
            raise err(-1102, "leverage")
        try:
            lev = int(str(raw))
        except ValueError:
            raise err(-1102, "leverage") from None
        table = self.tables[sym]
        if not 1 <= lev <= max_leverage(table):
            raise err(-4028, lev)
        pos = self.account.position(sym, self.leverage[sym])
        if abs(pos.notional(self.mark_price(sym))) > max_notional(table, lev):
            raise err(-2027)
        self.leverage[sym] = lev
        pos.leverage = lev
        return {"leverage": lev, "maxNotionalValue": str(int(max_notional(table, lev))), "symbol": sym}

    def set_margin_type(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        sym = self._sym(params.get("symbol"))
        mt = str(params.get("marginType", "")).upper()
        if mt not in ("ISOLATED", "CROSSED"):
            raise err(-1102, "marginType") if not mt else err(-1130, "marginType")
        if self.margin_type[sym] == mt:
            raise err(-4046)
        if self.live_orders(sym):
            raise err(-4047)
        if self.account.position(sym, self.leverage[sym]).amt != 0:
            raise err(-4048)
        self.margin_type[sym] = mt
        self.account.positions[sym].margin_type = mt
        return {"code": 200, "msg": "success"}

    def set_dual(self, params: dict[str, str], now: int) -> dict[str, object]:
        self.advance(now)
        want = _bool(params.get("dualSidePosition"))
        if want == self.account.dual_side:
            raise err(-4059)
        if self.live_orders():
            raise err(-4067)
        if self.account.open_positions():
            raise err(-4068)
        self.account.dual_side = want
        return {"code": 200, "msg": "success"}

    def set_multi_assets(self, params: dict[str, str], now: int) -> dict[str, object]:
        want = _bool(params.get("multiAssetsMargin"))
        if want == self.account.multi_assets:
            raise BinanceError(-4171, "No need to change multi-assets mode.")
        self.account.multi_assets = want
        return {"code": 200, "msg": "success"}

    # ---- funding, margin call, liquidation ---------------------------------------------------------------------
    def _settle_funding(self, t: int) -> None:
        """Every position held after the fills stamped at or before ``t`` pays (or receives) the settlement at
        ``t``, on the mark at ``t``. Funding is linear in the position, so fills at ``t`` itself count whole."""
        if t <= self.last_settled_ms:
            return
        self.last_settled_ms = t
        touched = []
        for p in self.account.open_positions():
            d = self.data[p.symbol]
            rate = Decimal(repr(d.funding_rate_at(t)))
            mark = self.mark_price(p.symbol, t)
            pay = acct.funding_payment(p.amt, mark, rate)
            self.account.wallet += pay
            if p.isolated:
                p.isolated_wallet += pay
            self._add_income(p.symbol, "FUNDING_FEE", pay, t, info="FUNDING_FEE")
            touched.append(p)
        if touched:
            self.account.update_time = t
            iso = [p.symbol for p in touched if p.isolated]
            self._account_event("FUNDING_FEE", t, iso)

    def _check_margin_call(self, t: int) -> None:
        if not self.account.open_positions():
            self.margin_call_armed = True
            return
        s = self.summary()
        ratio = s.margin_ratio
        if ratio >= self.cfg.margin_call_ratio and self.margin_call_armed:
            self.margin_call_armed = False
            marks = self.marks()
            self._emit({"e": "MARGIN_CALL", "E": t, "cw": fs(q8(s.cross_wallet)), "p": [
                {"s": p.symbol, "ps": "BOTH", "pa": fs(p.amt), "mt": "ISOLATED" if p.isolated else "CROSSED",
                 "iw": fs(q8(p.isolated_wallet)), "mp": fs(marks[p.symbol]), "up": fs(q8(p.unrealized(marks[p.symbol]))),
                 "mm": fs(q8(maintenance_margin(self.tables[p.symbol], p.notional(marks[p.symbol])))),
                 } for p in self.account.open_positions()]})
        elif ratio < self.cfg.margin_call_ratio * Decimal("0.9"):
            self.margin_call_armed = True

    def _liquidate(self, sym: str, lp: Decimal, t: int) -> None:
        """Documented approximation of Binance's liquidation: the whole position closes at the liquidation price,
        a liquidation fee of |q|×LP×liquidationFee (capped at what margin is left) goes to the insurance fund,
        the account's open orders are cancelled, and a negative wallet is reset to zero."""
        pos = self.account.positions[sym]
        spec = self.specs[sym]
        price = spec.round_price(lp)
        size = abs(pos.amt)
        isolated = pos.isolated
        for o in self.live_orders(sym if isolated else None):
            o.status, o.update_time = "CANCELED", t
            self._order_event(o, "CANCELED", t)
        for a in self.live_algos(sym if isolated else None):
            a.status, a.update_time = "CANCELED", t
            self._algo_event(a, t)
        side = "SELL" if pos.amt > 0 else "BUY"
        mm_left = maintenance_margin(self.tables[sym], size * price)
        o = Order(next(self._ids), sym, f"autoclose-{t}", side, "LIQUIDATION", "IOC", size, price, False, t, t)
        self.add_order(o)
        iso_wallet = pos.isolated_wallet
        res = self.account.apply_fill(sym, side, size, price, ZERO, t)
        o.executed, o.cum_quote, o.status = size, price * size, "FILLED"
        # Capped at the position's maintenance margin and at the margin balance the close left (trader.model.money
        # .liquidation_fee's rule): through a gap the fee never digs the account into the insurance fund by itself.
        margin_left = self.account.cross_wallet() + sum(
            (p.unrealized(self.mark_price(p.symbol, t)) for p in self.account.open_positions() if not p.isolated), ZERO)
        if isolated:
            margin_left = iso_wallet + res.realized_pnl
        fee = max(ZERO, min(q8(size * price * spec.liquidation_fee), q8(mm_left), q8(margin_left)))
        self.account.wallet -= fee
        tid = next(self._trade_ids)
        self.trades.append(Trade(tid, o.order_id, sym, side, price, size, q8(res.realized_pnl), ZERO, False, t))
        self._add_income(sym, "REALIZED_PNL", q8(res.realized_pnl), t, tid)
        self._add_income(sym, "INSURANCE_CLEAR", -fee, t, tid, info="liquidation fee")
        if self.account.wallet < 0:
            self._add_income("", "INSURANCE_CLEAR", -self.account.wallet, t, info="insurance fund cover")
            self.account.wallet = ZERO
        self._order_event(o, "CALCULATED", t, size, price, ZERO, tid, False, q8(res.realized_pnl))
        self._account_event("ORDER", t, [sym])


def _window(rows: list, params: dict[str, str], time_attr: str, id_attr: str | None = None,
            id_param: str | None = None, default_limit: int = 500) -> list:
    """startTime/endTime/fromId/limit as Binance applies them: ascending, the most recent ``limit`` when no
    start is given."""
    if params.get("startTime"):
        rows = [r for r in rows if getattr(r, time_attr) >= int(params["startTime"])]
    if params.get("endTime"):
        rows = [r for r in rows if getattr(r, time_attr) <= int(params["endTime"])]
    if id_attr and id_param and params.get(id_param):
        rows = [r for r in rows if getattr(r, id_attr) >= int(params[id_param])]
    limit = min(int(params.get("limit") or default_limit), 1000)
    rows = sorted(rows, key=lambda r: getattr(r, time_attr))
    if params.get("startTime") or (id_param and params.get(id_param)):
        return rows[:limit]
    return rows[-limit:]

