"""The store's release of candles to the feeds: whole minutes for a strategy that reads every pair at once, each
pair's candle as soon as the pairs before it are in for one that decides in pair order (issue 16: a pair's order
must not wait for the other pairs' candles), and a lagging pair skipped, with the decision it is owed."""

from __future__ import annotations

import asyncio
import threading

from trader.exchange.streams import Candle
from trader.live.feed import MINUTE, LiveFeed, live_feed_class
from trader.live.store import LiveStore

A, B, C = "AAA/USDT:USDT", "BBB/USDT:USDT", "CCC/USDT:USDT"
T0 = 1_747_573_200_000  # a full hour


class Gate:
    """The part of the desk the store uses: the candle gate (nothing to settle here), the strategy's wake-up, and
    the ledger's bookkeeping held while a minute is on its way (``candles_pending``, ``candles_done``)."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.candles_pending = None
        self.done_calls = 0

    def gate_open(self, pair: str) -> bool:
        return False  # through settle, as a candle with something to wait for goes

    async def settle(self, pair: str, low: float, high: float) -> None:
        return None

    def candles_done(self) -> None:
        self.done_calls += 1


def _store(in_pair_order: bool, tf_ms: int = MINUTE) -> tuple[LiveStore, dict[str, LiveFeed]]:
    cls = live_feed_class(())
    feeds = {p: cls(pair=p, tf_ms=tf_ms, name=p) for p in (A, B, C)}
    store = LiveStore(None, Gate(), in_pair_order=in_pair_order)  # type: ignore[arg-type]
    store.attach(feeds)
    return store, feeds


def _candle(store: LiveStore, pair: str, minute: int) -> None:
    ts = T0 + minute * MINUTE
    asyncio.run(store.candle_handler(pair)(Candle(pair, ts, 1.0, 1.0, 1.0, 1.0, 1.0)))


def _queued(feeds: dict[str, LiveFeed]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for pair, f in feeds.items():
        got = []
        while not f._q.empty():
            item = f._q.get_nowait()
            assert item is not None
            got.append((item[0].ts_ms - T0) // MINUTE)
        out[pair] = got
    return out


def test_a_whole_minute_at_once_for_a_strategy_reading_every_pair() -> None:
    store, feeds = _store(in_pair_order=False)
    _candle(store, A, 0)
    _candle(store, C, 0)
    assert _queued(feeds) == {A: [], B: [], C: []}
    assert store.candles_pending() and store.desk.done_calls == 0  # the ledger's bookkeeping waits meanwhile
    _candle(store, B, 0)
    assert _queued(feeds) == {A: [0], B: [0], C: [0]}
    assert not store.candles_pending() and store.desk.done_calls == 1


def test_in_pair_order_each_candle_goes_once_the_pairs_before_it_are_in() -> None:
    store, feeds = _store(in_pair_order=True)
    _candle(store, A, 0)  # the first pair: at once
    assert _queued(feeds) == {A: [0], B: [], C: []}
    _candle(store, C, 0)  # waits for B: the strategy decides B before C, as the backtest's pass does
    assert _queued(feeds) == {A: [], B: [], C: []}
    _candle(store, B, 0)
    assert _queued(feeds) == {A: [], B: [0], C: [0]}
    _candle(store, A, 1)
    _candle(store, B, 1)
    assert _queued(feeds) == {A: [1], B: [1], C: []}
    assert store._pending == {T0 + MINUTE: {A: store._pending[T0 + MINUTE][A], B: store._pending[T0 + MINUTE][B]}}


def test_a_lagging_pair_is_skipped_once_another_is_a_minute_on_and_is_owed_its_decision() -> None:
    store, feeds = _store(in_pair_order=True)
    _candle(store, A, 0)
    _candle(store, C, 0)  # B's candle of minute 0 never comes
    assert _queued(feeds) == {A: [0], B: [], C: []}
    _candle(store, A, 1)  # A is a minute further: minute 0 goes without B, then A's minute 1
    assert _queued(feeds) == {A: [1], B: [], C: [0]}
    assert feeds[B]._owed and not feeds[A]._owed and not feeds[C]._owed
    assert feeds[B].take_due() and not feeds[B].take_due()  # owed once (its length did not move)
    # B's late candle is still delivered (the feed's series stays whole) and does not disturb minute 1's progress.
    _candle(store, B, 0)
    assert _queued(feeds) == {A: [], B: [0], C: []}
    _candle(store, B, 1)
    _candle(store, C, 1)
    assert _queued(feeds) == {A: [], B: [1], C: [1]}
    assert store._pending == {}


def test_a_skipped_minute_inside_a_higher_timeframe_bar_owes_nothing() -> None:
    store, feeds = _store(in_pair_order=True, tf_ms=5 * MINUTE)
    for m in range(4):
        for p in (A, C):
            _candle(store, p, m)
    assert not feeds[B]._owed  # minutes 0 to 2 of a 5m bucket skipped: no bar would have closed
    for p in (C, A):
        _candle(store, p, 4)
    _candle(store, A, 5)  # minute 4 closes the bucket: B owes a decision on its standing bar
    assert feeds[B]._owed
    assert _queued(feeds) == {A: [0], B: [], C: [0]}


class RunnerGate(Gate):
    """A desk whose wake-up is the engine's runner: ``settled`` returns once the strategy's pass is done. Here it
    records what the feeds hold at that moment (what that pass sees)."""

    def __init__(self, feeds: dict[str, LiveFeed]) -> None:
        super().__init__()
        self.feeds = feeds
        self.passes: list[dict[str, list[int]]] = []
        self.wake.settled = self.settled  # type: ignore[attr-defined]

    async def settled(self) -> None:
        self.passes.append(_queued(self.feeds))


def test_in_pair_order_a_held_back_candle_is_prepared_after_the_pass_of_the_pair_that_held_it() -> None:
    cls = live_feed_class(())
    feeds = {p: cls(pair=p, tf_ms=MINUTE, name=p) for p in (A, B, C)}
    gate = RunnerGate(feeds)
    store = LiveStore(None, gate, in_pair_order=True)  # type: ignore[arg-type]
    store.attach(feeds)
    _candle(store, C, 0)
    _candle(store, B, 0)
    # Held back by A: kept as they came, no feed work yet (it would delay A's candle → order).
    assert feeds[B]._prepared_ms is None and feeds[C]._prepared_ms is None and gate.passes == []
    _candle(store, A, 0)
    # A's pass alone, then B and C prepared and released together in the next pass.
    assert gate.passes == [{A: [0], B: [], C: []}, {A: [], B: [0], C: [0]}]
    assert store._pending == {}
    # The next minute in order: each candle at once, one pass each.
    gate.passes.clear()
    for p in (A, B, C):
        _candle(store, p, 1)
    assert gate.passes == [{A: [1], B: [], C: []}, {A: [], B: [1], C: []}, {A: [], B: [], C: [1]}]
    # A lagging pair: B's minute 2 never comes; C's waits, and goes (B skipped) once A is a minute further on,
    # in the pass of A's next candle (the older minute first: it cannot wait behind the newer one).
    gate.passes.clear()
    _candle(store, C, 2)
    _candle(store, A, 2)
    assert feeds[C]._prepared_ms == T0 + MINUTE
    _candle(store, A, 3)
    assert feeds[B]._owed
    assert gate.passes == [{A: [2], B: [], C: []}, {A: [3], B: [], C: [2]}]
    assert store._pending == {T0 + 3 * MINUTE: {A: store._pending[T0 + 3 * MINUTE][A]}}
