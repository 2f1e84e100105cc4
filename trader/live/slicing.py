"""The order desk's execution: the optimiser's plan carried out, and every execution's quality recorded.

Part of ``OrderDesk`` (trader.live.desk), like protection and account sync. An entry the optimiser
(trader/execution/optimiser.py) would not send whole at market goes out here as slices: each slice is an order of
its own (its own client id and ledger row, recorded before it is sent), a post-only (GTX) limit at the entry's own
side of the book that waits ``slice_wait_s`` and is cancelled if unfilled, or a market order; when the time limit
is reached what is left goes at market (the fallback). The desk's invariants hold slice by slice:

- the stop goes out with the first fill of the first slice (a close-position stop covers whatever size the later
  slices add), before anything else happens; if it cannot be placed the position is closed and slicing stops;
- the targets follow once slicing is over, scaled to the quantity that filled;
- the Backtrader order receives every slice's fill and completes once, at the end; one that filled nothing is
  cancelled with its children, and the trade row it opened is cancelled.

Cancelling the Backtrader order (or a pause, a maintenance window, illiquidity) stops further slices; a resting
slice is cancelled, and what has filled stays, protected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from decimal import ROUND_DOWN, Decimal
from typing import Any

from trader.events import RiskAction
from trader.exchange.errors import ExchangeError
from trader.execution.optimiser import ExecutionPlan, ExecutionRules, book_top, plan_order
from trader.execution.quality import ExecutionTape
from trader.live.orders import PROTECTIVE, ZERO, OrderSpec, StatusNote, Tracked

log = logging.getLogger("trader.live.desk")


class Execution:
    """Plans, slices and records executions (see the module docstring)."""

    market: Any
    exec_rules: ExecutionRules

    # -- the market side ------------------------------------------------------------------------------------------
    async def start_market(self) -> None:
        """Start the market-side watch when the desk's options carry its settings (the engine calls this after
        ``load``); the gate the risk rules ask is then ``self.market``."""
        settings = self.options.market  # type: ignore[attr-defined]
        if settings is None or self.market is not None:
            return
        from trader.execution.market import MarketWatch

        self.exec_rules = settings.execution
        watch = MarketWatch(self.client, list(self.pairs), liquidity=settings.liquidity,  # type: ignore[attr-defined]
                            schedule=settings.schedule(), bus=self.bus, options=settings.options,  # type: ignore[attr-defined]
                            depth=settings.depth)
        watch.desk = self
        await watch.start()
        self.market = watch

    async def stop_market(self) -> None:
        if self.market is not None:
            await self.market.stop()

    # -- the market-side gate -----------------------------------------------------------------------------------
    def entry_refusal(self, pair: str) -> str | None:
        """Why an entry on ``pair`` may not go out now: a user's or a guard's pause, or a market-side block
        (maintenance, illiquidity); None when it may."""
        if self.entry_block:  # type: ignore[attr-defined]
            return str(self.entry_block)  # type: ignore[attr-defined]
        verdict = self.market.refusal(pair) if self.market is not None else None
        if verdict is not None:
            return f"{verdict.rule}: " + ", ".join(f"{k} {v}" for k, v in verdict.values.items())
        return None

    def _refuse_entry(self, t: Tracked, why: str) -> None:
        self.bus.publish(RiskAction(action="entry_refused", reason=why, pair=t.pair,  # type: ignore[attr-defined]
                                    rule=why.partition(":")[0] if ":" in why else "pause",
                                    values=self._refusal_values(t.pair)))
        self._finish(t, "rejected", f"entries blocked: {why}")  # type: ignore[attr-defined]

    def _refusal_values(self, pair: str) -> dict[str, Any]:
        verdict = self.market.refusal(pair) if self.market is not None else None
        return dict(verdict.values) if verdict is not None else {}

    # -- the tape -------------------------------------------------------------------------------------------------
    def _tape(self, t: Tracked) -> ExecutionTape:
        """The execution record ``t`` fills into (created on first use; slices share their entry's)."""
        if t.tape is None:
            s = t.spec
            decision = s.decision_price
            if decision is None and s.kind != "market":
                decision = s.price  # a stop's or target's trigger, a limit's price
            if decision is None:
                decision = self._mid(t.pair)
            style = "conditional" if s.kind in ("stop", "take_profit") else ("post_only" if s.post_only else s.kind)
            t.tape = ExecutionTape(t.pair, s.side, _purpose_word(s), decision, style=style,
                                   planned=s.amount, trade_id=t.trade_id)
        return t.tape

    def _mid(self, pair: str) -> Decimal | None:
        book = self.market.book(pair) if self.market is not None else None
        return book.mid() if book is not None else None

    def _record_execution(self, t: Tracked) -> None:
        tape = t.tape
        if tape is None or t.exec_parent is not None:
            return  # a slice: the sliced execution is recorded once, at its end
        if tape.trade_id is None:
            tape.trade_id = t.trade_id or None
        record = tape.record()
        if record is not None:
            self.ledger.record_execution(record)  # type: ignore[attr-defined]

    # -- planning -------------------------------------------------------------------------------------------------
    def _plan(self, t: Tracked) -> ExecutionPlan | None:
        s = t.spec
        if self.market is None or s.kind != "market" or not s.is_entry or s.amount is None:
            return None
        spec = self.spec(s.pair)  # type: ignore[attr-defined]
        top = book_top(self.market.book(s.pair), self.exec_rules.depth_band)
        return plan_order(s.side, s.amount, urgent=s.tag.startswith("force"), top=top, wallet=float(self.wallet),  # type: ignore[attr-defined]
                          step=Decimal(str(spec.step_size)), min_notional=Decimal(str(spec.min_notional)),
                          rules=self.exec_rules)

    # -- slicing --------------------------------------------------------------------------------------------------
    async def _send_sliced(self, parent: Tracked, plan: ExecutionPlan) -> None:
        """Runs under the pair's lock (as ``_send``); see the module docstring."""
        rules = self.exec_rules
        pair = parent.pair
        tape = self._tape(parent)
        tape.slices = len(plan.slices)
        tape.style = plan.style
        loop = asyncio.get_running_loop()
        deadline = loop.time() + rules.time_limit_s
        log.info("%s entry %s: %s", pair, parent.spec.amount, plan.reason)
        wanted = parent.spec.amount or ZERO
        stopped = ""
        for i, qty in enumerate(plan.slices):
            if parent.cancel_requested:
                stopped = "cancelled"
                break
            refusal = self.entry_refusal(pair)
            if refusal:
                stopped = f"entries blocked: {refusal}"
                break
            late = loop.time() >= deadline
            post_only = plan.style == "post_only" and not late
            left = wanted - parent.filled
            if late or i == len(plan.slices) - 1:
                qty = left  # the last slice (or the fallback) takes all that is left
            if qty <= 0:
                break
            if late and not self._worth_sending(pair, qty):
                break
            if not await self._one_slice(parent, qty, post_only, deadline):
                stopped = "no stop could be placed" if parent.cancel_requested else "a market slice was refused"
                break
            if parent.filled >= wanted:
                break
            if late:
                break
            if not post_only and i + 1 < len(plan.slices):
                await asyncio.sleep(min(rules.slice_wait_s, max(0.0, deadline - loop.time())))
        else:
            left = wanted - parent.filled
            if left > 0 and not stopped and not parent.cancel_requested and self._worth_sending(pair, left):
                # The time limit's market fallback for what the resting slices left.
                tape.fallback = True
                await self._one_slice(parent, left, False, deadline)
        await self._finish_sliced(parent, stopped)

    def _worth_sending(self, pair: str, qty: Decimal) -> bool:
        spec = self.spec(pair)  # type: ignore[attr-defined]
        mid = self._mid(pair)
        return qty > 0 and (mid is None or float(qty * mid) >= float(spec.min_notional))

    async def _one_slice(self, parent: Tracked, qty: Decimal, post_only: bool, deadline: float) -> bool:
        """One slice out and followed to its end (a resting one for at most ``slice_wait_s``). False stops the
        slicing: a market slice the exchange refused, or a stop that could not be placed; a post-only slice that
        did not fill (or would have taken, −5022) is not a failure: the next slice or the fallback follows."""
        pair = parent.pair
        s = parent.spec
        price = None
        if post_only:
            top = book_top(self.market.book(pair), self.exec_rules.depth_band) if self.market is not None else None
            if top is None:
                post_only = False
            else:
                price = top.resting_price(s.side)
        spec = dataclasses.replace(s, ref=-1, kind="limit" if post_only else "market", amount=qty, price=price,
                                   post_only=post_only)
        t = Tracked(spec, protected=True, exec_parent=parent, tape=self._tape(parent))
        if parent.trade_id:
            req = self._build(t, parent.trade_id)  # type: ignore[attr-defined]
        else:
            req = self._build_for_trade(t)  # type: ignore[attr-defined]
            parent.trade_id = t.trade_id
            self._tape(parent).trade_id = t.trade_id
        self._tape(parent).client_ids.append(t.cid)
        state = await self._create(t, req)  # type: ignore[attr-defined]
        if state is None:
            return post_only and t.status != "open"  # an unknown outcome is looked up in the background: stop here
        self._publish_placed(t)  # type: ignore[attr-defined]
        self._apply(t, state)  # type: ignore[attr-defined]
        if not await self._guard_stop(parent):
            return False
        if post_only:
            loop = asyncio.get_running_loop()
            until = min(loop.time() + self.exec_rules.slice_wait_s, deadline)
            while t.live and loop.time() < until and not parent.cancel_requested:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(t.done.wait(), min(0.2, max(0.01, until - loop.time())))
                if not await self._guard_stop(parent):
                    return False
            if t.live:
                await self._cancel(t, force=True)  # type: ignore[attr-defined]
            if t.live:
                await self.sync_order(t, wait=False)  # type: ignore[attr-defined]
            if not await self._guard_stop(parent):
                return False
        return True

    async def _guard_stop(self, parent: Tracked) -> bool:
        """The stop goes out with the first fill; False when it could not be placed (the position was closed)."""
        if parent.filled <= 0:
            return True
        stop = next((c for c in parent.children if c.spec.purpose == "stop"), None)
        if stop is None or stop.cid or not stop.live:
            return True
        if stop.cancel_requested:
            return True
        ok = await self._place_protective(stop, parent.trade_id or 0)  # type: ignore[attr-defined]
        if not ok:
            await self._unprotected(pair := parent.pair, f"stop for trade {parent.trade_id} could not be placed")  # type: ignore[attr-defined]
            for other in parent.children:
                if other.live and other is not stop:
                    self._finish(other, "canceled", "position closed: no stop")  # type: ignore[attr-defined]
            parent.cancel_requested = True
            log.error("%s: sliced entry stopped: no stop", pair)
            return False
        return True

    async def _finish_sliced(self, parent: Tracked, stopped: str) -> None:
        pair = parent.pair
        if parent.filled > 0:
            planned = parent.spec.amount or parent.filled
            share = parent.filled / planned if planned > 0 else Decimal(1)
            spec = self.spec(pair)  # type: ignore[attr-defined]
            step = Decimal(str(spec.step_size))
            for child in parent.children:
                if child.cid or not child.live or child.spec.amount is None or child.spec.purpose not in PROTECTIVE:
                    continue
                if share < 1:
                    amount = (child.spec.amount * share / step).to_integral_value(rounding=ROUND_DOWN) * step
                    if amount <= 0:
                        self._finish(child, "canceled", "entry filled too little for this target")  # type: ignore[attr-defined]
                        continue
                    child.spec = dataclasses.replace(child.spec, amount=amount)
            await self._protect(parent)  # type: ignore[attr-defined]
            parent.status = "closed"
            parent.done.set()
            if parent.spec.ref >= 0:
                self.notes.put(StatusNote(parent.spec.ref, "completed"))  # type: ignore[attr-defined]
                self.wake.set()  # type: ignore[attr-defined]
            self._retire(parent)  # type: ignore[attr-defined]
            self._record_execution(parent)
            return
        if parent.trade_id and self.positions[pair][0] == 0:  # type: ignore[attr-defined]
            self.ledger.update_trade(parent.trade_id, status="cancelled", exit_reason="unfilled")  # type: ignore[attr-defined]
            self.trades.pop(pair, None)  # type: ignore[attr-defined]
        self._finish(parent, "canceled" if parent.cancel_requested else "rejected",  # type: ignore[attr-defined]
                     stopped or "no slice filled")

    # -- desk-decided closes (staged liquidity close) ---------------------------------------------------------------
    def close_part_qty(self, pair: str, qty: Decimal) -> Decimal:
        step = Decimal(str(self.spec(pair).step_size))  # type: ignore[attr-defined]
        return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step

    async def close_part(self, pair: str, qty: Decimal, tag: str) -> None:
        """A reduce-only market order for ``qty`` of the position, decided by the desk (a staged close); waits
        until it has been answered."""
        async def run() -> None:
            size = self.positions[pair][0]  # type: ignore[attr-defined]
            amount = min(abs(size), qty)
            if amount <= 0:
                return
            spec = OrderSpec(-1, pair, "sell" if size > 0 else "buy", "market", amount, None, True, False, "exit", tag,
                             decision_price=self._mid(pair))
            t = Tracked(spec, protected=True)
            book = self.trades.get(pair)  # type: ignore[attr-defined]
            req = self._build(t, (book.id or 0) if book is not None else 0)  # type: ignore[attr-defined]
            try:
                state = await self._create(t, req)  # type: ignore[attr-defined]
            except ExchangeError as exc:
                self._error(f"{pair}: staged close: {exc}", "close")  # type: ignore[attr-defined]
                return
            if state is not None:
                self._publish_placed(t)  # type: ignore[attr-defined]
                self._apply(t, state)  # type: ignore[attr-defined]
        await self._spawn(pair, run())  # type: ignore[attr-defined]


def _purpose_word(spec: OrderSpec) -> str:
    if spec.is_entry:
        return "entry"
    if spec.purpose in ("tp1", "tp2", "tp3"):
        return "take_profit"
    return "stop" if spec.purpose == "stop" else "exit"

