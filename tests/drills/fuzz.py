"""Fuzzed user-data updates (issue 11's standing drills): the order desk against a simulator, fed the exchange's own
ORDER_TRADE_UPDATE / ALGO_UPDATE events duplicated, reordered and replayed stale, plus junk.

The desk trades for real (entries with a stop and a target, stops and targets triggered by scripted prices, partial
fills across book levels, market orders the desk did not send — as a flatten or a person would) but no account
stream runs: every update reaches ``OrderDesk.on_orders`` only through the fuzzer. Invariants, checked after every
round and at the end:

- nothing raises out of ``on_orders`` (crashes);
- the position mirror equals the exchange's position (mirror mismatches);
- a batch of updates the desk has already seen (old, duplicated, stale cumulative) changes nothing (double counts);
- per order, the ledger's fills equal the exchange's executed quantity (ledger mismatches), and no fill key twice;
- the exchange holds no two orders under one client id (duplicate orders).
"""

from __future__ import annotations

import asyncio
import copy
import random
import tempfile
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from trader.config.pairs import exchange_symbol
from trader.events import EventBus
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.models import OrderRequest, OrderState
from trader.live.desk import OrderDesk
from trader.live.ledger import Ledger
from trader.live.orders import OrderSpec
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.persistence.models import Fill, Order
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
QTY = {"BTC/USDT:USDT": (Decimal("0.002"), Decimal("0.03"), Decimal("0.001")),
       "ETH/USDT:USDT": (Decimal("0.05"), Decimal("1.0"), Decimal("0.01"))}
KINDS = ("ORDER_TRADE_UPDATE", "ALGO_UPDATE")
ZERO = Decimal(0)


def _pair_of(sim: SimulatorServer, symbol: str) -> str | None:
    for p in PAIRS:
        if exchange_symbol(p) == symbol:
            return p
    return None


class Fuzzer:
    def __init__(self, seed: int, db_path: Path) -> None:
        self.rng = random.Random(seed)
        self.db_path = db_path
        self.events: list[dict[str, Any]] = []  # every event the exchange emitted, in order
        self.fed = 0  # updates handed to on_orders
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []
        self._ref = 0
        self._seen_upto = 0

    # -- plumbing -----------------------------------------------------------------------------------------------
    async def setup(self) -> None:
        self.sim = await SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS)).start()
        self.sim.set_book({"level_notional": 400.0})  # market orders walk several levels: partial fills
        self.sim.exchange.listeners.append(self._capture)
        self.client = ExchangeClient(ClientOptions(
            api_url=self.sim.rest_url, ws_url=self.sim.ws_url.removesuffix("/ws"), api_key=DEFAULT_API_KEY,
            secret=DEFAULT_API_SECRET, backoff=BackoffPolicy(attempts=4, base_s=0.01, cap_s=0.05),
            resolve_delay_s=0.01))
        await self.client.initialize(PAIRS, 25)
        self.db = make_engine(f"sqlite:///{self.db_path}")
        upgrade(self.db)
        self.sessions = make_session_factory(self.db)
        self.desk = OrderDesk(self.client, PAIRS, leverage=25, ledger=Ledger(self.sessions), bus=EventBus())
        await self.desk.load()

    async def close(self) -> None:
        await self.desk.close()
        if self.desk._balance_task is not None:  # a balance refresh still on its way
            await asyncio.gather(self.desk._balance_task, return_exceptions=True)
        await self.client.close()
        await self.sim.stop()
        self.db.dispose()

    def _capture(self, event: dict[str, Any]) -> None:
        if event.get("e") in KINDS:
            self.events.append(copy.deepcopy(event))

    def _state(self, event: dict[str, Any]) -> OrderState | None:
        pair = _pair_of(self.sim, str((event.get("o") or {}).get("s") or ""))
        if pair is None:
            return None  # the stream drops symbols it does not trade (AccountStream._dispatch)
        return OrderState.from_user_event(event, pair)

    async def _feed(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            try:
                state = self._state(event)
                if state is None:
                    continue
                # The stream hands updates over one by one or in small batches.
                await self.desk.on_orders([state])
            except Exception as exc:  # noqa: BLE001 - what the drill counts
                self.counts["crashes"] += 1
                self.failures.append(f"on_orders raised {exc!r} on {event}")
            self.fed += 1
        await self.desk.drain()

    def _mirror(self) -> dict[str, Decimal]:
        return {p: self.desk.positions[p][0] for p in PAIRS}

    def _exchange_positions(self) -> dict[str, Decimal]:
        held = {p.symbol: p.amt for p in self.sim.exchange.account.open_positions()}
        return {p: held.get(exchange_symbol(p), ZERO) for p in PAIRS}

    # -- fuzzing ------------------------------------------------------------------------------------------------
    def _junk(self, template: dict[str, Any]) -> list[dict[str, Any]]:
        """Updates that must change nothing: another symbol, an unknown order with nothing filled, fields missing."""
        out = []
        other = copy.deepcopy(template)
        other["o"]["s"] = "DOGEUSDT"
        out.append(other)
        unknown = copy.deepcopy(template)
        if unknown["e"] == "ORDER_TRADE_UPDATE":
            unknown["o"].update({"c": f"web_{self.rng.randrange(10**9)}", "i": self.rng.randrange(10**9, 10**10),
                                 "z": "0", "l": "0", "X": "NEW", "x": "NEW"})
        else:
            unknown["o"].update({"caid": f"web_{self.rng.randrange(10**9)}", "aid": self.rng.randrange(10**9),
                                 "X": "NEW"})
        out.append(unknown)
        bare = copy.deepcopy(template)
        for key in self.rng.sample(sorted(bare["o"]), k=min(4, len(bare["o"]))):
            if key not in ("s", "c", "caid", "z", "i", "aid"):
                bare["o"].pop(key, None)
        if bare["e"] == "ORDER_TRADE_UPDATE":
            bare["o"]["z"] = "0"  # a fill without its numbers would be unverifiable; the shape is what is fuzzed
        out.append(bare)
        return out

    def _shuffle(self, events: list[dict[str, Any]], dup: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in events:
            out.append(e)
            while self.rng.random() < dup:
                out.append(copy.deepcopy(e))
                self.counts["duplicates"] += 1
        # Local reordering: each update moves up to 4 places.
        keyed = sorted(((i + self.rng.uniform(0, 4), e) for i, e in enumerate(out)), key=lambda x: x[0])
        moved = [e for _, e in keyed]
        self.counts["reordered"] += sum(1 for a, b in zip(out, moved, strict=True) if a is not b)
        return moved

    async def deliver_new(self) -> None:
        """Everything the exchange emitted since the last delivery, fuzzed, until the desk stops reacting."""
        for _ in range(20):
            await self.desk.drain()
            fresh = self.events[self._seen_upto:]
            if not fresh:
                return
            self._seen_upto = len(self.events)
            batch = self._shuffle(fresh, dup=0.5)
            for e in self.rng.sample(fresh, k=min(2, len(fresh))):
                batch += self._junk(e)
                self.counts["junk"] += 3
            await self._feed(batch)

    async def replay_old(self, n: int) -> None:
        """Updates the desk has already applied, in any order: nothing may move."""
        if not self._seen_upto:
            return
        before = self._mirror()
        old = [copy.deepcopy(self.events[self.rng.randrange(self._seen_upto)]) for _ in range(n)]
        self.counts["stale_replays"] += len(old)
        await self._feed(old)
        after = self._mirror()
        if after != before:
            self.counts["double_counts"] += 1
            self.failures.append(f"replaying {n} old updates moved the mirror {before} -> {after}")

    # -- trading ------------------------------------------------------------------------------------------------
    def _price(self, pair: str) -> float:
        return float(self.sim.exchange.last_price(exchange_symbol(pair)))

    def _qty(self, pair: str) -> Decimal:
        low, high, step = QTY[pair]
        n = self.rng.randint(int(low / step), int(high / step))
        return n * step

    async def enter(self, pair: str) -> None:
        side = self.rng.choice(("buy", "sell"))
        sign = 1 if side == "buy" else -1
        exit_side = "sell" if side == "buy" else "buy"
        price = self._price(pair)
        qty = self._qty(pair)
        tick = Decimal("0.1") if pair.startswith("BTC") else Decimal("0.01")
        stop = (Decimal(str(price * (1 - sign * 0.01))) / tick).quantize(Decimal(1)) * tick
        tp = (Decimal(str(price * (1 + sign * 0.005))) / tick).quantize(Decimal(1)) * tick
        step = QTY[pair][2]
        tp_qty = max(step, (qty / 2 / step).quantize(Decimal(1)) * step)
        refs = [self._ref + i for i in range(3)]
        self._ref += 3
        group = [OrderSpec(refs[0], pair, side, "market", qty, None, False, False, "entry", "fuzz"),
                 OrderSpec(refs[1], pair, exit_side, "stop", None, stop, True, True, "stop"),
                 OrderSpec(refs[2], pair, exit_side, "take_profit", tp_qty, tp, True, False, "tp1")]
        self.desk.submit_group(group)
        self.counts["entries"] += 1
        if self.rng.random() < 0.5:
            # The stream ahead of the REST answers: updates reach the desk while its requests are in flight.
            self.counts["early_deliveries"] += 1
            while self.desk.busy() or len(self.events) > self._seen_upto:
                fresh = self.events[self._seen_upto:]
                self._seen_upto = len(self.events)
                for e in self._shuffle(fresh, dup=0.3):
                    state = self._state(e)
                    if state is not None:
                        try:
                            await self.desk.on_orders([state])
                        except Exception as exc:  # noqa: BLE001
                            self.counts["crashes"] += 1
                            self.failures.append(f"on_orders raised {exc!r} on {e}")
                        self.fed += 1
                await asyncio.sleep(0.001)
                if not any(list(self.desk._inflight.values())) and len(self.events) == self._seen_upto:
                    break
        await self.desk.drain()

    async def move_through(self, pair: str, kind: str) -> None:
        """Script the price past the pair's stop or target and step the clock: the exchange triggers it."""
        algos = [a for a in self.sim.exchange.live_algos(exchange_symbol(pair))
                 if (a.order_type == "STOP_MARKET") == (kind == "stop")]
        if not algos:
            return
        level = float(algos[0].trigger_price)
        beyond = level * (0.995 if algos[0].side == "SELL" else 1.005)
        self.sim.set_price(pair, beyond)
        self.sim.step(60_000)
        self.sim.clear_price(pair)
        self.counts[f"{kind}_triggers"] += 1

    async def foreign_close(self, pair: str, share: float) -> None:
        """A market order the desk did not send (a flatten's close, a person in the app)."""
        amt = self.sim.exchange.account.positions.get(exchange_symbol(pair))
        size = amt.amt if amt is not None else ZERO
        if size == 0:
            return
        step = QTY[pair][2]
        qty = max(step, (abs(size) * Decimal(str(share)) / step).quantize(Decimal(1)) * step)
        req = OrderRequest(pair, "sell" if size > 0 else "buy", "market", f"web_{self.rng.randrange(10**12)}",
                           amount=min(qty, abs(size)), reduce_only=True)
        await self.client.create_order(req)
        self.counts["foreign_orders"] += 1

    # -- checks -------------------------------------------------------------------------------------------------
    def check(self, where: str) -> None:
        mirror, theirs = self._mirror(), self._exchange_positions()
        if mirror != theirs:
            self.counts["mirror_mismatches"] += 1
            self.failures.append(f"{where}: mirror {mirror}, exchange {theirs}")

    def final_checks(self) -> None:
        self.desk.ledger.flush()
        executed: dict[str, Decimal] = defaultdict(lambda: ZERO)
        by_cid: Counter[str] = Counter()
        for o in self.sim.exchange.orders.values():
            executed[o.client_id] += o.executed
            by_cid[o.client_id] += 1
        algo_cids = Counter(a.client_algo_id for a in self.sim.exchange.algos.values())
        self.counts["duplicate_orders"] = sum(n - 1 for n in by_cid.values() if n > 1) + sum(
            n - 1 for n in algo_cids.values() if n > 1)
        with self.sessions() as s:
            rows = s.execute(select(Order.client_order_id, Fill.amount, Fill.exchange_trade_id)
                             .join(Fill, Fill.order_id == Order.id)).all()
        ours: dict[str, Decimal] = defaultdict(lambda: ZERO)
        keys: Counter[str] = Counter()
        for cid, amount, key in rows:
            ours[cid] += amount
            keys[key] += 1
        self.counts["duplicate_fill_keys"] = sum(n - 1 for n in keys.values() if n > 1)
        bad = 0
        for cid, qty in executed.items():
            if qty > 0 and ours.get(cid, ZERO) != qty:
                bad += 1
                self.failures.append(f"order {cid}: {ours.get(cid, ZERO)} in the ledger, {qty} executed")
        for cid, qty in ours.items():
            if cid not in executed and qty:
                bad += 1
                self.failures.append(f"ledger fills {qty} for {cid}, which the exchange never executed")
        self.counts["ledger_fill_mismatches"] = bad
        self.counts["desk_errors"] = len(self.desk.errors)


async def run_fuzz(updates: int = 2000, seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
    """Trade and fuzz until at least ``updates`` updates were fed; returns the counts."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="drill-fuzz-")
        workdir = Path(tmp.name)
    f = Fuzzer(seed, Path(workdir) / "fuzz.db")
    await f.setup()
    rounds = 0
    try:
        while f.fed < updates:
            rounds += 1
            pair = f.rng.choice(PAIRS)
            if f.desk.positions[pair][0] == 0:
                await f.enter(pair)
            await f.deliver_new()
            f.check(f"round {rounds} after entry")
            action = f.rng.random()
            if action < 0.35:
                await f.move_through(pair, "take_profit")
            elif action < 0.7:
                await f.move_through(pair, "stop")
            else:
                await f.foreign_close(pair, f.rng.choice((0.3, 0.5, 1.0)))
            await f.deliver_new()
            f.check(f"round {rounds} after exit")
            await f.replay_old(f.rng.randint(5, 40))
            f.check(f"round {rounds} after replay")
            f.sim.step(60_000)
        f.final_checks()
    finally:
        await f.close()
        if tmp is not None:
            tmp.cleanup()
    out: dict[str, Any] = {"rounds": rounds, "updates_fed": f.fed, **{k: f.counts[k] for k in (
        "entries", "early_deliveries", "stop_triggers", "take_profit_triggers", "foreign_orders", "duplicates", "reordered", "junk",
        "stale_replays", "crashes", "mirror_mismatches", "double_counts", "ledger_fill_mismatches",
        "duplicate_fill_keys", "duplicate_orders", "desk_errors")}}
    out["failures"] = f.failures[:20]
    out["desk_error_samples"] = f.desk.errors[:5]
    return out


if __name__ == "__main__":  # pragma: no cover - quick manual run
    import json
    import sys
    print(json.dumps(asyncio.run(run_fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 300)), indent=1, default=str))
