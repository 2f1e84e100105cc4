"""The Backtrader side of the live broker: strategies call it exactly as they call the backtest's FuturesBroker.

It validates and accepts orders where Backtrader runs, hands them to the ``OrderDesk`` (a parent and its protective
children travel together once the last of the group is transmitted, so the desk can place the stop the moment the
entry fills), and applies the desk's notes — fills, cancels, rejections, wallet updates — in ``next()``, which
Cerebro calls on every pass of its live loop. Position and order objects are therefore only ever touched by
Backtrader's code. Live, that code runs in the engine loop's strategy greenlet (trader/live/runner.py): an order
goes to the desk directly and the greenlet steps aside once, so the send starts before the rest of the pass; a
broker driven from another thread hands its orders to the loop instead.

Order mapping (Backtrader → Binance):
- Market → MARKET; Limit → LIMIT GTC (entries) or, reduce-only, TAKE_PROFIT_MARKET (``DeskOptions.take_profit``);
- Stop with ``close_position`` → STOP_MARKET closePosition; Stop with ``reduce_only`` → STOP_MARKET reduce-only;
- the order's ``tag`` picks the client-id purpose (entry, stop, tp1..tp3, exit, force).
"""

from __future__ import annotations

import math
import queue
import threading
from collections import defaultdict, deque
from decimal import Decimal
from typing import Any

import backtrader as bt

from trader.live.desk import OrderDesk
from trader.live.host import EngineHost
from trader.live.orders import FillNote, OrderSpec, StatusNote, WalletNote
from trader.live.runner import StrategyRunner
from trader.model.instruments import FeeSchedule, InstrumentSpec
from trader.model.money import initial_margin, realized_pnl, unrealized_pnl
from trader.strategy.broker_common import FuturesBrokerMixin, FuturesCommInfo, order_snapshot

Order = bt.Order
_SUPPORTED = (Order.Market, Order.Stop, Order.Limit)


class LiveBroker(FuturesBrokerMixin, bt.BrokerBase):
    def __init__(self, desk: OrderDesk, host: EngineHost, runner: StrategyRunner | None = None) -> None:
        super().__init__()
        self.desk = desk
        self.host = host
        self.runner = runner
        self.wake: Any = desk.wake
        self.pending_submits = 0  # handed to the loop, not yet registered by the desk
        self.passes = 0  # Cerebro loop passes (tests and wait_idle use it)
        self.commands: queue.SimpleQueue[Any] = queue.SimpleQueue()  # callables run on this thread
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.positions: dict[bt.DataBase, bt.Position] = defaultdict(bt.Position)
        self.notifs: deque[Order] = deque()
        self.orders: dict[int, Order] = {}
        self._held: list[Order] = []
        self.wallet = float(self.desk.wallet)
        self.available = float(self.desk.available)
        self.startingcash = self.wallet
        self.rejections: list[str] = []
        self._feeds: dict[str, bt.DataBase] = {}
        for d in getattr(getattr(self, "cerebro", None), "datas", []):
            self._feeds[d._name] = d
            self.comminfo[d._name] = FuturesCommInfo(spec=self.desk.spec(d._name), fees=FeeSchedule(),
                                                     leverage=float(self.desk.leverage))
            size, entry = self.desk.positions.get(d._name, (Decimal(0), Decimal(0)))
            if size:
                # A position that was open before this run: the strategy sees it from the first bar.
                self.positions[d].set(float(size), float(entry))

    def stop(self) -> None:
        """Positions and their exchange-side stops stay where they are."""

    # -- account protocol (trader.strategy.base.FuturesAccount) ------------------------------------------------
    @property
    def leverage(self) -> int:
        return int(self.desk.leverage)

    def instrument(self, data: bt.DataBase) -> InstrumentSpec:
        return self.desk.spec(data._name)

    def wallet_balance(self) -> float:
        return self.wallet

    def risk_scale(self) -> float:
        return self.desk.risk_scale

    def _marks(self) -> tuple[float, float]:
        upnl = im = 0.0
        for d, pos in self.positions.items():
            if pos.size:
                mark = getattr(d, "last_close", math.nan)
                if not math.isfinite(mark):
                    mark = pos.price
                upnl += unrealized_pnl(pos.size, pos.price, mark)
                im += initial_margin(pos.size, mark, self.leverage)
        return upnl, im

    def getvalue(self, datas: list[bt.DataBase] | None = None) -> float:
        if datas is None:
            return self.wallet + self._marks()[0]
        total = 0.0
        for d in datas:
            pos = self.positions[d]
            if pos.size:
                mark = d.close[0]
                total += initial_margin(pos.size, mark, self.leverage) + unrealized_pnl(pos.size, pos.price, mark)
        return total

    get_value = getvalue

    def getposition(self, data: bt.DataBase) -> bt.Position:
        return self.positions[data]

    def get_notification(self) -> Order | None:
        return self.notifs.popleft() if self.notifs else None

    def notify(self, order: Order) -> None:
        self.notifs.append(order_snapshot(order))

    # -- order entry --------------------------------------------------------------------------------------------
    def submit(self, order: Order, oco: Order | None = None) -> Order:
        # An order's data, parent, exectype... are Backtrader parameters behind a __getattr__: read once here.
        data, parent = order.data, order.parent
        order.submit(self)
        order.addcomminfo(self.comminfo.get(data._name) or self.getcommissioninfo(data))
        self.notify(order)
        if parent is not None and not parent.alive() and parent.status != Order.Completed:
            # The entry was refused: its stop and targets have nothing to protect.
            order.cancel()
            self.notify(order)
            return order
        problem = self._validate(order, oco)
        if problem:
            self._reject(order, problem)
            return order
        order.accept(self)
        self.notify(order)
        self.orders[order.ref] = order
        if not order.transmit:
            self._held.append(order)
            return order
        if self._held and parent is not None and parent in self._held:
            group, self._held = [*self._held, order], []
        else:
            group = [order]
        specs = [self._spec(o) for o in group]
        runner = self.runner
        if runner is not None and runner.in_strategy():
            # On the engine loop's thread: the desk takes it now, and the send task's first step (the order's rows
            # journalled, request signed and written) runs before the rest of this pass.
            self.desk.submit_group(specs)
            runner.pause()
            return order
        with self._lock:
            self.pending_submits += 1
        self.host.call_soon(self._hand_over, specs)
        return order

    def _hand_over(self, specs: list[OrderSpec]) -> None:
        try:
            self.desk.submit_group(specs)
        finally:
            with self._lock:
                self.pending_submits -= 1

    def _validate(self, order: Order, oco: Order | None) -> str:
        if oco is not None:
            return "OCO groups are not supported live (use close_position stops and reduce-only targets)"
        exectype, data, info = order.exectype, order.data, order.info
        if exectype not in _SUPPORTED:
            return f"order type {Order.ExecTypes[exectype]} is not supported (Market, Stop, Limit)"
        if order.valid:
            return "order validity (GTD) is not supported"
        forced = bool(info.get("forced"))
        if not forced and not getattr(data, "bar_is_live", True):
            # A strategy's decision on a preloaded bar would act on the past; a person's forced entry acts now.
            return "decided on a historical bar: live orders only follow live bars"
        reduce = bool(info.get("reduce_only") or info.get("close_position"))
        spec = self.desk.spec(data._name)
        size = abs(order.created.size)
        if not info.get("close_position"):
            if size <= 0 or not math.isfinite(size):
                return "quantity must be positive"
            if abs(spec.round_qty_down(size) - size) > 1e-9 * max(1.0, size):
                return f"quantity {size} is not a multiple of step {spec.step_size} (-4023)"
        if exectype != Order.Market and not (order.created.price and order.created.price > 0):
            return "stop/limit orders need a positive price"
        if not reduce:
            if self.desk.entry_block:
                return f"entries blocked: {self.desk.entry_block}"
            last = getattr(data, "last_close", math.nan)
            current = last if forced and math.isfinite(last) else data.close[0]
            ref = order.created.price if exectype != Order.Market else current
            if size * ref < spec.min_notional:
                return f"notional {size * ref:.2f} below minimum {spec.min_notional} (-4164)"
        return ""

    def _reject(self, order: Order, why: str) -> None:
        order.info.reject_reason = why
        self.rejections.append(f"{order.data._name}: {why}")
        order.reject(self)
        self.notify(order)
        for held in [o for o in self._held if o.parent is order]:
            self._held.remove(held)
            held.cancel()
            self.notify(held)

    def _spec(self, order: Order) -> OrderSpec:
        info, data, exectype = order.info, order.data, order.exectype
        pair = data._name
        spec = self.desk.spec(pair)
        close_position = bool(info.get("close_position"))
        reduce = bool(info.get("reduce_only")) or close_position
        tag = str(info.get("tag") or "")
        if exectype == Order.Market:
            kind = "market"
        elif exectype == Order.Stop:
            kind = "stop"
        elif reduce and self.desk.options.take_profit == "take_profit_market":
            kind = "take_profit"
        else:
            kind = "limit"
        price = None if kind == "market" else Decimal(str(spec.round_price(float(order.created.price))))
        amount = None if close_position else Decimal(str(spec.round_qty_down(abs(order.created.size))))
        # The price the order was decided on: the bar the strategy saw, or for a forced order the latest price.
        last = getattr(data, "last_close", math.nan) if info.get("forced") else math.nan
        decided = last if math.isfinite(last) else (data.close[0] if len(data) else math.nan)
        decision = Decimal(str(decided)) if kind == "market" and math.isfinite(decided) and decided > 0 else None
        return OrderSpec(order.ref, pair, "buy" if order.isbuy() else "sell", kind, amount, price,
                         reduce and not close_position, close_position, _purpose(tag, kind, reduce), tag,
                         decision_price=decision)

    def cancel(self, order: Order, bracket: bool = False) -> bool:
        if not order.alive():
            return False
        if order in self._held:
            self._held.remove(order)
            order.cancel()
            self.notify(order)
            return True
        if self.runner is not None and self.runner.in_strategy():
            self.desk.cancel_ref(order.ref)  # in call order with submits (a replaced stop goes before its successor)
        else:
            self.host.call_soon(self.desk.cancel_ref, order.ref)
        return True

    # -- applying the desk's notes ------------------------------------------------------------------------------
    def next(self) -> None:
        self.passes += 1
        # empty() before get_nowait(): an exception per empty queue costs more than the check, on every pass. This
        # thread is the queues' only consumer, so an item seen is an item taken.
        commands = self.commands
        while not commands.empty():
            commands.get_nowait()()
        notes = self.desk.notes
        while not notes.empty():
            note = notes.get_nowait()
            if isinstance(note, FillNote):
                self._on_fill(note)
            elif isinstance(note, StatusNote):
                self._on_status(note)
            elif isinstance(note, WalletNote):
                self.wallet, self.available = note.wallet, note.available

    def _on_fill(self, n: FillNote) -> None:
        data = self._feeds.get(n.pair)
        if data is None:
            return
        order = self.orders.get(n.ref) if n.ref is not None else None
        if order is None:
            order = self._external_order(data, n)
        pos = self.positions[data]
        old_price = pos.price
        dt = data.datetime[0] if len(data) else 0.0
        _, _, opened, closed = pos.update(n.qty, n.price)
        self._snap(pos, self.desk.spec(n.pair))
        pnl = realized_pnl(closed, old_price, n.price, 1 if closed < 0 else -1) if closed else 0.0
        self.wallet += pnl - n.fee
        share = abs(closed) / abs(n.qty) if n.qty else 0.0
        lev = self.leverage
        order.execute(dt, n.qty, n.price, closed, abs(closed) * old_price / lev, n.fee * share, opened,
                      abs(opened) * n.price / lev, n.fee * (1 - share), abs(pos.size) * n.price / lev, pnl,
                      pos.size, pos.price)
        if n.completed:
            # Reduce-only and close-position fills differ from the created size; the exchange says when it is done.
            order.completed()
        order.info.fill_ms = n.ts_ms
        self.notify(order)
        if not order.alive():
            self.orders.pop(order.ref, None)

    def _external_order(self, data: bt.DataBase, n: FillNote) -> Order:
        owner = self.cerebro.runningstrats[0] if getattr(self, "cerebro", None) and self.cerebro.runningstrats else None
        cls = bt.BuyOrder if n.qty > 0 else bt.SellOrder
        order = cls(owner=owner, data=data, size=abs(n.qty), price=n.price, exectype=Order.Market, simulated=True)
        order.addinfo(tag=n.tag, liquidation=n.tag == "liquidation", reduce_only=True)
        order.addcomminfo(self.comminfo.get(data._name) or self.getcommissioninfo(data))
        order.submit(self)
        order.accept(self)
        return order

    def _on_status(self, n: StatusNote) -> None:
        order = self.orders.pop(n.ref, None)
        if order is None or not order.alive():
            return
        if n.status == "completed":
            order.completed()
        elif n.status == "canceled":
            order.cancel()
        elif n.status == "expired":
            order.expire()
        elif n.status == "margin":
            order.info.reject_reason = n.reason
            order.margin()
        else:
            order.info.reject_reason = n.reason
            self.rejections.append(f"{order.data._name}: {n.reason}")
            order.reject(self)
        self.notify(order)

    @staticmethod
    def _snap(pos: bt.Position, spec: InstrumentSpec) -> None:
        steps = round(pos.size / spec.step_size)
        pos.size = round(steps * spec.step_size, 12)
        if not steps:
            pos.size = 0.0
            pos.price = 0.0


def _purpose(tag: str, kind: str, reduce: bool) -> str:
    if tag.startswith("force"):
        return "force"
    if not reduce:
        return "entry"
    if tag in ("tp1", "tp2", "tp3"):
        return tag
    if kind == "stop" or tag.startswith("stop"):
        return "stop"
    if kind in ("limit", "take_profit"):
        return "tp1" if not tag else "exit"
    return "exit"
