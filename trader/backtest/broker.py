"""A Backtrader broker that keeps a Binance USDⓈ-M cross-margin account.

Strategies talk to it through Backtrader's ordinary API (``buy``/``sell``/``close``/``cancel``, ``notify_order``),
plus the small account protocol in ``trader.strategy.base`` that a live broker implements too. Everything
backtest-specific (bar paths, funding from files, liquidation by the formula) lives here, never in the strategy.

Per bar, for each pair, in this order:
1. market orders submitted on an earlier bar fill at the open (taker, slippage);
2. funding settlements stamped at or before the open are paid/received on the position then held;
3. the bar is walked as a path — open, then the extreme adverse to the open position (the conservative choice),
   then the other extreme — and every stop, take-profit and the liquidation price is handled in the order the
   path reaches it. A level the open has already passed fills at the open (gap-through).
Liquidation is checked on mark prices: the mark/last ratio known at the bar (latest mark candle open divided by
the last price at that instant) maps the bar's last-price extremes to mark extremes.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np

from trader.backtest.slippage import SlippageModel
from trader.model.instruments import FeeSchedule, InstrumentSpec
from trader.model.money import (
    funding_cashflow,
    initial_margin,
    liquidation_fee,
    liquidation_price,
    maintenance_margin,
    max_notional,
    open_cost,
    realized_pnl,
)
from trader.model.rules import instrument
from trader.strategy.broker_common import FuturesBrokerMixin, FuturesCommInfo, order_snapshot

Order = bt.Order
_CONDITIONAL = (Order.Stop, Order.Limit)
_SUPPORTED = (Order.Market, Order.Stop, Order.Limit)


@dataclass
class TradeRecord:
    """One round trip: from flat to flat (or to a reversal) on one pair."""

    pair: str
    side: str  # "long" | "short"
    open_ms: int
    close_ms: int = 0
    qty: float = 0.0  # largest absolute size held
    entry_price: float = 0.0  # volume-weighted over entry fills
    exit_price: float = 0.0  # volume-weighted over exit fills
    realized_pnl: float = 0.0  # price P&L of the exits, before fees and funding
    fees: float = 0.0
    funding: float = 0.0  # cash received (+) or paid (−)
    liquidation_fee: float = 0.0
    exit_reason: str = ""
    fills: int = 0
    liquidated: bool = False
    equity_at_open: float = 0.0
    _entry_qty: float = 0.0
    _entry_value: float = 0.0
    _exit_qty: float = 0.0
    _exit_value: float = 0.0

    @property
    def net_pnl(self) -> float:
        return self.realized_pnl - self.fees + self.funding - self.liquidation_fee

    @property
    def return_on_equity(self) -> float:
        return self.net_pnl / self.equity_at_open if self.equity_at_open > 0 else 0.0


@dataclass
class PairData:
    """Arrays the broker reads by bar index: the feed's prices plus mark ratio and funding for the same bars."""

    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    mark_ratio: np.ndarray  # mark / last at the latest known instant (1.0 when no mark data)
    funding_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="int64"))
    funding_rate: np.ndarray = field(default_factory=lambda: np.empty(0))
    funding_mark: np.ndarray = field(default_factory=lambda: np.empty(0))  # NaN where unknown


class _Pair:
    __slots__ = ("data", "spec", "arr", "pos", "fptr", "last_i", "orders", "trade", "lp", "lp_dirty", "pair")

    def __init__(self, data: bt.DataBase, spec: InstrumentSpec, arr: PairData, pos: bt.Position) -> None:
        self.data = data
        self.spec = spec
        self.arr = arr
        self.pos = pos
        self.pair = spec.pair
        self.fptr = 0
        self.last_i = -1
        self.orders: list[Order] = []  # alive conditional/market orders on this pair, submission order
        self.trade: TradeRecord | None = None
        self.lp: float | None = None
        self.lp_dirty = True


class FuturesBroker(FuturesBrokerMixin, bt.BrokerBase):
    params = (
        ("cash", 10_000.0),
        ("leverage", 25),
        ("fees", FeeSchedule()),
        ("slippage", SlippageModel()),
        ("progress", None),  # callable(bars_done) every 2**16 bars
        ("close_at_end", True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._pairs: dict[bt.DataBase, _Pair] = {}
        self._arrays: dict[str, PairData] = {}
        self._trigger_kinds: dict[int, tuple[bool, float, bool]] = {}  # order ref → (market, level, rising)
        self._specs: dict[str, InstrumentSpec] = {}

    # --- wiring -----------------------------------------------------------------------------------------------
    def attach(self, pair: str, arrays: PairData, spec: InstrumentSpec | None = None) -> None:
        """Give the broker the per-bar arrays of the feed named ``pair`` (call before cerebro.run)."""
        self._arrays[pair] = arrays
        self._specs[pair] = spec or instrument(pair)

    def start(self) -> None:
        super().start()
        self.wallet = float(self.p.cash)
        self.startingcash = self.wallet
        self.positions: dict[bt.DataBase, bt.Position] = defaultdict(bt.Position)
        self.notifs: list[Order] = []
        self._notif_i = 0
        self.trades: list[TradeRecord] = []
        self.equity = array("d")
        self.equity_ms = array("q")
        self.exposure_bars = 0
        self.fees_paid = 0.0
        self.funding_paid = 0.0  # net paid; negative means received
        self.liquidation_fees = 0.0
        self.liquidations = 0
        self.insurance_covered = 0.0
        self.rejections: list[str] = []
        self._nbar = 0
        self._open_count = 0
        self._children: dict[int, list[Order]] = defaultdict(list)
        self._oco: dict[int, int] = {}
        self._oco_groups: dict[int, list[Order]] = defaultdict(list)
        # Every feed is tracked from the first bar, traded or not: funding pointers and exposure depend on it.
        self._pairs = {}
        for d in getattr(getattr(self, "cerebro", None), "datas", []):
            self._pair_of(d)

    def _pair_of(self, data: bt.DataBase) -> _Pair:
        p = self._pairs.get(data)
        if p is None:
            name = data._name
            if name not in self._arrays:
                raise KeyError(f"no arrays attached for feed {name!r}: call FuturesBroker.attach first")
            spec = self._specs[name]
            ci = FuturesCommInfo(spec=spec, fees=self.p.fees, leverage=float(self.p.leverage))
            self.comminfo[name] = ci
            p = _Pair(data, spec, self._arrays[name], self.positions[data])
            arr = p.arr
            # Settlements before the first bar concern positions this run never held.
            p.fptr = int(np.searchsorted(arr.funding_ms, arr.ts_ms[0])) if len(arr.ts_ms) else 0
            self._pairs[data] = p
        return p

    # --- account protocol (trader.strategy.base.FuturesAccount) ------------------------------------------------
    @property
    def leverage(self) -> int:
        return int(self.p.leverage)

    def instrument(self, data: bt.DataBase) -> InstrumentSpec:
        return self._pair_of(data).spec

    def wallet_balance(self) -> float:
        return self.wallet

    def risk_scale(self) -> float:
        return 1.0  # latency protection acts live only

    def _marks(self) -> tuple[float, float]:
        """(Σ unrealized P&L, Σ position initial margin) at the current bars' marks."""
        upnl = im = 0.0
        lev = self.p.leverage
        for p in self._pairs.values():
            q = p.pos.size
            if q:
                i = len(p.data) - 1
                mark = p.arr.close[i] * p.arr.mark_ratio[i]
                upnl += q * (mark - p.pos.price)
                im += abs(q) * mark / lev
        return upnl, im

    def getvalue(self, datas: list[bt.DataBase] | None = None) -> float:
        if datas is None:
            return self.wallet + self._marks()[0]
        total = 0.0
        for d in datas:
            p = self._pair_of(d)
            if p.pos.size:
                i = len(d) - 1
                mark = p.arr.close[i] * p.arr.mark_ratio[i]
                total += abs(p.pos.size) * mark / self.p.leverage + p.pos.size * (mark - p.pos.price)
        return total

    get_value = getvalue

    def getposition(self, data: bt.DataBase) -> bt.Position:
        return self.positions[data]

    def get_notification(self) -> Order | None:
        if self._notif_i < len(self.notifs):
            o = self.notifs[self._notif_i]
            self._notif_i += 1
            if self._notif_i == len(self.notifs):
                self.notifs.clear()
                self._notif_i = 0
            return o
        return None

    def notify(self, order: Order) -> None:
        self.notifs.append(order_snapshot(order))

    # --- order entry ----------------------------------------------------------------------------------------
    def submit(self, order: Order, oco: Order | None = None) -> Order:
        p = self._pair_of(order.data)
        order.submit(self)
        order.addcomminfo(self.comminfo[order.data._name])
        self.notify(order)
        problem = self._validate(order, p)
        if problem:
            self._reject(order, problem)
            return order
        order.accept(self)
        self.notify(order)
        order.info.eligible_after = order.data.datetime[0]
        if oco is not None:
            gid = self._oco.get(oco.ref, oco.ref)
            self._oco[oco.ref] = gid
            self._oco[order.ref] = gid
            if oco not in self._oco_groups[gid]:
                self._oco_groups[gid].append(oco)
            self._oco_groups[gid].append(order)
        if order.parent is not None and order.parent.alive():
            self._children[order.parent.ref].append(order)  # activates when the parent fills
        else:
            p.orders.append(order)
        return order

    def _validate(self, order: Order, p: _Pair) -> str:
        if order.exectype not in _SUPPORTED:
            return f"order type {Order.ExecTypes[order.exectype]} is not supported (Market, Stop, Limit)"
        if order.valid:
            return "order validity (GTD) is not supported"
        size = abs(order.created.size)
        if not order.info.get("close_position") and (size <= 0 or not math.isfinite(size)):
            return "quantity must be positive"
        if not order.info.get("close_position"):
            stepped = p.spec.round_qty_down(size)
            if abs(stepped - size) > 1e-9 * max(1.0, size):
                return f"quantity {size} is not a multiple of step {p.spec.step_size} (-4023)"
        if order.exectype != Order.Market and not (order.created.price and order.created.price > 0):
            return "stop/limit orders need a positive price"
        reduce = order.info.get("reduce_only") or order.info.get("close_position")
        if not reduce:
            ref = order.created.price if order.exectype != Order.Market else order.data.close[0]
            if size * ref < p.spec.min_notional:
                return f"notional {size * ref:.2f} below minimum {p.spec.min_notional} (-4164)"
            i = max(len(p.data) - 1, 0)
            if order.exectype != Order.Stop and self._above_position_cap(
                    p, order, size, p.arr.close[i] * p.arr.mark_ratio[i]):
                return self._cap_reason()
            if order.exectype != Order.Stop and self._order_cost(order, p, size, ref) > self._free_for_orders():
                return "margin is insufficient (-2019)"
        return ""

    def _above_position_cap(self, p: _Pair, order: Order, size: float, mark: float) -> bool:
        """−2027, as Binance (and the simulator) check it when an order is placed, or when a conditional order
        triggers: the position plus every resting opening order on this side plus this one, valued at the mark,
        above ``maxNotionalValue`` at the current leverage. An order that only reduces the position is exempt."""
        pos = p.pos.size
        direction = 1 if order.isbuy() else -1
        closing = min(size, abs(pos)) if pos and (pos > 0) != (direction > 0) else 0.0
        if size - closing <= 1e-12:
            return False
        resting = 0.0
        for o in p.orders:
            if (o is order or o.exectype == Order.Stop or o.isbuy() != order.isbuy() or not o.alive()
                    or o.info.get("reduce_only") or o.info.get("close_position")):
                continue
            resting += abs(o.created.size) - abs(o.executed.size)
        return abs(pos + direction * (resting + size)) * mark > max_notional(p.spec.brackets, self.p.leverage)

    def _cap_reason(self) -> str:
        return f"position and open orders above maxNotionalValue at {self.p.leverage}x (-2027)"

    def _order_cost(self, order: Order, p: _Pair, size: float, ref: float) -> float:
        """Binance's cost to open: initial margin plus the open loss against the mark (FAQ-COST)."""
        i = max(len(p.data) - 1, 0)
        mark = p.arr.close[i] * p.arr.mark_ratio[i]
        return open_cost(size, ref, mark, self.p.leverage, 1 if order.isbuy() else -1)

    def _free_for_orders(self) -> float:
        """Available balance minus the margin already promised to resting opening orders (openOrderInitialMargin).

        Conditional (stop) entries reserve nothing until they trigger, as on Binance's algo service.
        """
        held = 0.0
        for q in self._pairs.values():
            for o in q.orders:
                if o.exectype != Order.Stop and not (o.info.get("reduce_only") or o.info.get("close_position")):
                    ref = o.created.price if o.exectype != Order.Market else q.data.close[0]
                    held += abs(o.created.size) * ref / self.p.leverage
        return self.available_balance() - held

    def _reject(self, order: Order, why: str) -> None:
        order.info.reject_reason = why
        self.rejections.append(f"{order.data._name}: {why}")
        if "(-2019)" in why:
            order.margin()
        else:
            order.reject(self)
        self.notify(order)
        self._cancel_children(order)

    def cancel(self, order: Order, bracket: bool = False) -> bool:
        p = self._pair_of(order.data)
        if order in p.orders:
            p.orders.remove(order)
        elif order.parent is not None and order in self._children.get(order.parent.ref, []):
            self._children[order.parent.ref].remove(order)
        else:
            return False
        order.cancel()
        self.notify(order)
        self._cancel_children(order)
        return True

    def _cancel_children(self, order: Order) -> None:
        for child in self._children.pop(order.ref, []):
            child.cancel()
            self.notify(child)

    def _oco_fired(self, order: Order) -> None:
        gid = self._oco.pop(order.ref, None)
        if gid is None:
            return
        for other in self._oco_groups.pop(gid, []):
            self._oco.pop(other.ref, None)
            if other is not order and other.alive():
                self.cancel(other)

    # --- the bar loop -----------------------------------------------------------------------------------------
    def next(self) -> None:
        if not self._pairs:
            return
        self._nbar += 1
        if self.p.progress is not None and not (self._nbar & 0xFFFF):
            self.p.progress(self._nbar)
        last_ms = 0
        for p in self._pairs.values():
            i = len(p.data) - 1
            if i == p.last_i or i < 0:
                continue
            p.last_i = i
            arr = p.arr
            if arr.ts_ms[i] > last_ms:
                last_ms = int(arr.ts_ms[i])
            ts = arr.ts_ms[i]
            due = p.fptr < len(arr.funding_ms) and arr.funding_ms[p.fptr] <= ts
            if due and arr.funding_ms[p.fptr] < ts:
                self._funding(p, i, int(ts) - 1)  # settled inside a data gap: on the position held then
            # Fills stamped at the open instant (market orders, levels the open gapped through) come before a
            # settlement stamped at that instant: a position opened at the settlement pays it, one closed at it
            # does not (binance-futures.md §4; the simulator applies the same order).
            if p.orders:
                self._fill_market(p, i)
            if p.orders or p.pos.size:
                self._fill_at_open(p, i)
            if due:
                self._funding(p, i, int(ts))
                if p.pos.size:
                    self._fill_at_open(p, i)  # the settlement may have put the open beyond the liquidation price
            if p.orders or p.pos.size:
                self._walk_bar(p, i)
        self._record(last_ms)

    def _fill_market(self, p: _Pair, i: int) -> None:
        dt = p.data.datetime[0]
        kinds = self._trigger_kinds
        for order in [o for o in p.orders if (kinds.get(o.ref) or self._kind(o))[0]]:
            if order.info.eligible_after >= dt or not order.alive():
                continue
            price = self.p.slippage.apply(p.arr.open[i], order.isbuy(), p.arr.high[i] - p.arr.low[i])
            self._fill(p, order, price, maker=False, i=i)

    def _funding(self, p: _Pair, i: int, upto_ms: int) -> None:
        """Pay or receive every settlement stamped at or before ``upto_ms`` on the position held now."""
        arr = p.arr
        while p.fptr < len(arr.funding_ms) and arr.funding_ms[p.fptr] <= upto_ms:
            q = p.pos.size
            if q:
                mark = arr.funding_mark[p.fptr] if len(arr.funding_mark) else math.nan
                if not math.isfinite(mark):
                    mark = arr.open[i] * arr.mark_ratio[i]
                cash = funding_cashflow(q, float(mark), float(arr.funding_rate[p.fptr]))
                self.wallet += cash
                self.funding_paid -= cash
                if p.trade is not None:
                    p.trade.funding += cash
                self._dirty_all()
            p.fptr += 1

    def _triggers(self, p: _Pair, eligible_dt: float) -> list[tuple[Order, float, bool]]:
        """Alive conditional orders as (order, level, fires-on-rising-price).

        Asked up to twice a bar while a position is open; an order's type, side and level never change (a moved
        stop is a new order), so they are read from Backtrader's order once and kept by order ref: those lookups
        go through ``Order.__getattr__`` and were the run's largest single cost (notes/16-13-speed.md)."""
        out = []
        kinds = self._trigger_kinds
        for o in p.orders:
            k = kinds.get(o.ref) or self._kind(o)
            if k[0] or o.info["eligible_after"] >= eligible_dt:
                continue
            out.append((o, k[1], k[2]))
        return out

    def _kind(self, o: Order) -> tuple[bool, float, bool]:
        market = o.exectype == Order.Market
        k = self._trigger_kinds[o.ref] = (market, 0.0 if market else float(o.created.price),
                                          (o.exectype == Order.Stop) == o.isbuy())
        return k

    def _fill_at_open(self, p: _Pair, i: int) -> None:
        """Gap-through at the open: a liquidation price or a stop/limit level the open has already passed is
        handled at the open, at the open's instant."""
        arr = p.arr
        o = arr.open[i]
        dt = p.data.datetime[0]
        ratio = arr.mark_ratio[i]
        for _ in range(64):  # bounded: each pass fills or cancels something
            lp_last = self._lp_last(p, i)
            if lp_last is not None and ((p.pos.size > 0 and o <= lp_last) or (p.pos.size < 0 and o >= lp_last)):
                self._liquidate(p, i, o * ratio)
                continue
            hit = None
            for order, lvl, rising in self._triggers(p, dt):
                if (rising and o >= lvl) or (not rising and o <= lvl):
                    hit = order
                    break
            if hit is None:
                break
            self._fill_conditional(p, hit, o, i, at_open=True)

    def _walk_bar(self, p: _Pair, i: int) -> None:
        """The bar after its open, as a path (see the module docstring); the open itself was handled before."""
        arr = p.arr
        o, h, lo, c = arr.open[i], arr.high[i], arr.low[i], arr.close[i]
        dt = p.data.datetime[0]
        ratio = arr.mark_ratio[i]
        trig = self._triggers(p, dt)
        lp_last = self._lp_last(p, i)
        # Cheap exit for the common bar where nothing is reached.
        if lp_last is None or not (lo <= lp_last <= h or (p.pos.size > 0 and o <= lp_last)
                                   or (p.pos.size < 0 and o >= lp_last)):
            if not any((h >= lvl) if rising else (lo <= lvl) for _, lvl, rising in trig):
                return
        q = p.pos.size
        if q > 0 or (q == 0 and c >= o):
            path = (o, lo, h)
        else:
            path = (o, h, lo)
        for a, b in ((path[0], path[1]), (path[1], path[2])):
            rising_seg = b > a
            cur = a
            for _ in range(64):
                best = None
                best_d = math.inf
                for order, lvl, rising in self._triggers(p, dt):
                    if rising != rising_seg:
                        continue
                    if (rising_seg and cur <= lvl <= b) or (not rising_seg and b <= lvl <= cur):
                        d = abs(lvl - cur)
                        if d < best_d:
                            best, best_d = order, d
                lp_last = self._lp_last(p, i)
                liq_d = math.inf
                if lp_last is not None:
                    if p.pos.size > 0 and not rising_seg and b <= lp_last <= cur:
                        liq_d = cur - lp_last
                    elif p.pos.size < 0 and rising_seg and cur <= lp_last <= b:
                        liq_d = lp_last - cur
                if liq_d < best_d:  # on a tie the order (usually the stop) goes first
                    self._liquidate(p, i, lp_last * ratio)
                    cur = lp_last
                    continue
                if best is None:
                    break
                cur = best.created.price
                self._fill_conditional(p, best, cur, i, at_open=False)

    def _fill_conditional(self, p: _Pair, order: Order, level: float, i: int, at_open: bool) -> None:
        if order.exectype == Order.Stop:
            price = self.p.slippage.apply(level, order.isbuy(), p.arr.high[i] - p.arr.low[i])
            self._fill(p, order, price, maker=False, i=i)
        else:
            # A limit the open jumped over behaves like a taker at the open; one reached inside the bar rests and
            # fills at its own price as maker.
            self._fill(p, order, level if not at_open else p.arr.open[i], maker=not at_open, i=i)

    # --- fills ------------------------------------------------------------------------------------------------
    def _fill(self, p: _Pair, order: Order, price: float, maker: bool, i: int) -> None:
        price = float(price)  # numpy scalars would leak into every record downstream
        pos = p.pos
        spec = p.spec
        size = order.executed.remsize
        clipped = False
        if order.info.get("close_position") or order.info.get("reduce_only"):
            if pos.size == 0 or (pos.size > 0) == order.isbuy():
                # Binance rejects a reduce-only order that would not reduce (-2022) when it triggers.
                self._drop(p, order, "reduce-only order with nothing to reduce (-2022)")
                return
            want = abs(pos.size) if order.info.get("close_position") else min(abs(size), abs(pos.size))
            clipped = order.info.get("close_position") or want < abs(size)
            size = want if order.isbuy() else -want
        new_size = pos.size + size
        opening = abs(new_size) > abs(pos.size) or (pos.size and (new_size > 0) != (pos.size > 0) and new_size)
        if opening:
            opened_qty = abs(new_size) if (pos.size == 0 or (new_size > 0) != (pos.size > 0)) else abs(size)
            # Market and limit orders passed the position cap when they were placed; Binance does not check it
            # again at the fill. A stop is a conditional order: checked now that it triggers, as on the algo
            # service (the simulator does the same).
            if order.exectype == Order.Stop and self._above_position_cap(p, order, abs(size),
                                                                          price * p.arr.mark_ratio[i]):
                self._drop(p, order, self._cap_reason(), margin=True)
                return
            need = initial_margin(opened_qty, price, self.p.leverage) + self.p.fees.fee(price, opened_qty, maker)
            if need > self.available_balance() + initial_margin(abs(size) - opened_qty, price, self.p.leverage):
                self._drop(p, order, "margin is insufficient (-2019)", margin=True)
                return
        old_price = pos.price
        old_size = pos.size
        fee = self.p.fees.fee(price, size, maker)
        bar_dt = p.data.datetime[0]
        psize, pprice, opened, closed = pos.update(size, price, p.data.datetime.datetime())
        self._snap(pos, spec)
        pnl = realized_pnl(closed, old_price, price, 1 if old_size > 0 else -1) if closed else 0.0
        self.wallet += pnl - fee
        self.fees_paid += fee
        share = abs(closed) / abs(size) if size else 0.0
        ci = self.comminfo[p.data._name]
        order.execute(bar_dt, size, price, closed, abs(closed) * old_price / self.p.leverage, fee * share,
                      opened, abs(opened) * price / self.p.leverage, fee * (1 - share), ci.get_margin(price), pnl,
                      pos.size, pos.price)
        if clipped and order.status == Order.Partial:
            order.completed()
        order.info.fill_kind = "maker" if maker else "taker"
        self.notify(order)
        self._ledger(p, order, old_size, old_price, closed, opened, price, fee, pnl, share)
        if not order.alive():
            if order in p.orders:
                p.orders.remove(order)
            self._activate_children(p, order)
            self._oco_fired(order)
        if pos.size == 0:
            self._cancel_reduce_only(p)
        self._dirty_all()

    def _drop(self, p: _Pair, order: Order, why: str, margin: bool = False) -> None:
        if order in p.orders:
            p.orders.remove(order)
        order.info.reject_reason = why
        self.rejections.append(f"{p.pair}: {why}")
        if margin:
            order.margin()
        else:
            order.reject(self)
        self.notify(order)
        self._cancel_children(order)
        self._oco_fired(order)

    def _activate_children(self, p: _Pair, order: Order) -> None:
        for child in self._children.pop(order.ref, []):
            # Protective orders go live the moment the entry fills, as the live engine places them on the fill
            # event; their prices were fixed when the entry was decided, so nothing of this bar leaks into them.
            child.info.eligible_after = -math.inf
            p.orders.append(child)

    def _cancel_reduce_only(self, p: _Pair) -> None:
        for o in [o for o in p.orders if o.info.get("reduce_only") or o.info.get("close_position")]:
            p.orders.remove(o)
            o.cancel()
            self.notify(o)
            self._oco.pop(o.ref, None)

    @staticmethod
    def _snap(pos: bt.Position, spec: InstrumentSpec) -> None:
        # Float sums of stepped quantities leave residues such as 1e-18; a position is a whole number of steps.
        steps = round(pos.size / spec.step_size)
        pos.size = round(steps * spec.step_size, 12)
        if not steps:
            pos.size = 0.0
            pos.price = 0.0

    def _ledger(self, p: _Pair, order: Order, old_size: float, old_price: float, closed: float, opened: float,
                price: float, fee: float, pnl: float, share: float) -> None:
        t = p.trade
        ms = int(p.arr.ts_ms[p.last_i])
        if closed and t is not None:
            t.realized_pnl += pnl
            t.fees += fee * share
            t._exit_qty += abs(closed)
            t._exit_value += abs(closed) * price
            t.fills += 1
            if order.info.get("liquidation"):
                t.exit_reason = "liquidation"
            else:
                t.exit_reason = order.info.get("tag") or _reason(order)
            if p.pos.size == 0 or (opened and abs(opened) > 0):
                self._close_trade(p, ms)
        if opened:
            if p.trade is None:
                # Equity before this fill: wallet before the entry fee; other positions' uPnL is left out because
                # it is only known at this bar's close.
                p.trade = TradeRecord(pair=p.pair, side="long" if opened > 0 else "short", open_ms=ms,
                                      equity_at_open=self.wallet + fee * (1 - share))
                self._open_count += 1
            t = p.trade
            t.fees += fee * (1 - share)
            t._entry_qty += abs(opened)
            t._entry_value += abs(opened) * price
            t.qty = max(t.qty, abs(p.pos.size))
            t.fills += 1

    def _close_trade(self, p: _Pair, ms: int) -> None:
        t = p.trade
        if t is None:
            return
        t.close_ms = ms
        t.entry_price = float(t._entry_value / t._entry_qty) if t._entry_qty else 0.0
        t.exit_price = float(t._exit_value / t._exit_qty) if t._exit_qty else 0.0
        t.realized_pnl = float(t.realized_pnl)
        t.fees = float(t.fees)
        t.funding = float(t.funding)
        t.liquidation_fee = float(t.liquidation_fee)
        t.equity_at_open = float(t.equity_at_open)
        self.trades.append(t)
        p.trade = None
        self._open_count -= 1

    # --- liquidation ------------------------------------------------------------------------------------------
    def _dirty_all(self) -> None:
        for p in self._pairs.values():
            p.lp_dirty = True

    def _lp_last(self, p: _Pair, i: int) -> float | None:
        """Liquidation price of ``p`` expressed in last-price terms for this bar, or None."""
        q = p.pos.size
        if not q:
            return None
        if p.lp_dirty or self._open_count > 1:
            p.lp = self._liq_price(p)
            p.lp_dirty = False
        return None if p.lp is None else p.lp / p.arr.mark_ratio[i]

    def _liq_price(self, p: _Pair) -> float | None:
        other_mm = other_upnl = 0.0
        for o in self._pairs.values():
            if o is p or not o.pos.size:
                continue
            i = max(o.last_i, 0)
            # The other contracts are valued at their latest close: intrabar paths of two pairs are unknowable.
            mark = o.arr.close[i - 1 if i > 0 else 0] * o.arr.mark_ratio[i]
            other_mm += maintenance_margin(abs(o.pos.size) * mark, o.spec.brackets)
            other_upnl += o.pos.size * (mark - o.pos.price)
        q = p.pos.size
        i = max(p.last_i, 0)
        return liquidation_price(1 if q > 0 else -1, abs(q), p.pos.price, self.wallet, p.spec.brackets,
                                 other_mm, other_upnl, ref_price=p.arr.open[i] * p.arr.mark_ratio[i])

    def _liquidate(self, p: _Pair, i: int, mark_price: float) -> None:
        """Close the whole position at ``mark_price`` (the liquidation price, or the open when gapped through).

        Binance reduces tier by tier and hands the rest to the insurance fund at the bankruptcy price; this closes
        everything at once (binance-futures.md §3.2's simulator model), charges the liquidation fee on the closed
        notional capped at the margin left, and lets the insurance fund absorb a negative balance.
        """
        mark_price = float(mark_price)
        pos = p.pos
        q = pos.size
        owner = self.cerebro.runningstrats[0] if getattr(self, "cerebro", None) else None
        cls = bt.SellOrder if q > 0 else bt.BuyOrder
        order = cls(owner=owner, data=p.data, size=abs(q), price=mark_price, exectype=Order.Market)
        order.addinfo(liquidation=True, tag="liquidation", client_order_id=f"autoclose-{self.liquidations + 1}")
        order.addcomminfo(self.comminfo[p.data._name])
        order.submit(self)
        order.accept(self)
        # Cross margin: every open order of the account is cancelled first.
        for other in self._pairs.values():
            for o in list(other.orders):
                other.orders.remove(o)
                o.cancel()
                self.notify(o)
        for kids in self._children.values():
            for child in kids:
                child.cancel()
                self.notify(child)
        self._children.clear()
        self._oco.clear()
        self._oco_groups.clear()
        old_price = pos.price
        psize, pprice, opened, closed = pos.update(-q, mark_price, p.data.datetime.datetime())
        pos.size, pos.price = 0.0, 0.0
        pnl = realized_pnl(q, old_price, mark_price, 1 if q > 0 else -1)
        self.wallet += pnl
        others_upnl = self._marks()[0]
        fee = liquidation_fee(abs(q) * mark_price, p.spec.liquidation_fee,
                              maintenance_margin(abs(q) * mark_price, p.spec.brackets), self.wallet + others_upnl)
        self.wallet -= fee
        self.liquidation_fees += fee
        if self.wallet < 0 and not any(o.pos.size for o in self._pairs.values()):
            self.insurance_covered += -self.wallet
            self.wallet = 0.0
        self.liquidations += 1
        ci = self.comminfo[p.data._name]
        order.execute(p.data.datetime[0], -q, mark_price, -q, abs(q) * old_price / self.p.leverage, fee, 0.0, 0.0,
                      0.0, ci.get_margin(mark_price), pnl, 0.0, 0.0)
        self.notify(order)
        t = p.trade
        if t is not None:
            t.realized_pnl += pnl
            t.liquidation_fee += fee
            t._exit_qty += abs(q)
            t._exit_value += abs(q) * mark_price
            t.fills += 1
            t.liquidated = True
            t.exit_reason = "liquidation"
            self._close_trade(p, int(p.arr.ts_ms[i]))
        self._dirty_all()

    # --- bookkeeping --------------------------------------------------------------------------------------------
    def _record(self, ms: int) -> None:
        upnl = 0.0
        if self._open_count:
            self.exposure_bars += 1
            for p in self._pairs.values():
                q = p.pos.size
                if q:
                    i = p.last_i
                    upnl += q * (p.arr.close[i] * p.arr.mark_ratio[i] - p.pos.price)
        self.equity.append(self.wallet + upnl)
        self.equity_ms.append(ms)

    def close_all(self, reason: str = "end_of_run") -> None:
        """Flatten every position at its last close (taker, slippage) — the run's final mark-to-market."""
        for p in self._pairs.values():
            for o in list(p.orders):
                p.orders.remove(o)
                o.cancel()
                self.notify(o)
            q = p.pos.size
            if not q:
                continue
            i = p.last_i
            cls = bt.SellOrder if q > 0 else bt.BuyOrder
            owner = self.cerebro.runningstrats[0] if getattr(self, "cerebro", None) else None
            order = cls(owner=owner, data=p.data, size=abs(q), exectype=Order.Market)
            order.addinfo(tag=reason, reduce_only=True)
            order.addcomminfo(self.comminfo[p.data._name])
            order.submit(self)
            order.accept(self)
            price = self.p.slippage.apply(p.arr.close[i], q < 0, 0.0)
            self._fill(p, order, price, maker=False, i=i)
        if self.equity:
            self.equity[-1] = self.wallet

    def stop(self) -> None:
        if self.p.close_at_end:
            self.close_all()


def _reason(order: Order) -> str:
    if order.exectype == Order.Stop:
        return "stop"
    if order.exectype == Order.Limit:
        return "take_profit" if (order.info.get("reduce_only") or order.info.get("close_position")) else "limit"
    return "exit_signal" if (order.info.get("reduce_only") or order.info.get("close_position")) else "market"


BarCallback = Callable[[int], None]
