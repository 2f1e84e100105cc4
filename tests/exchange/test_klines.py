"""KlineStreams against the simulator: every closed 1m candle of every pair exactly once, in order, with the
exchange's values — minute by minute, across a jump the socket only partly shows, a dropped connection, and a
start whose history ends minutes behind the socket."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

import trader.exchange.klines as klines_module
from tests.exchange.conftest import PAIRS, make_client
from trader.data.store import bundled_data_dir, load_candles
from trader.exchange.klines import KlineStreams
from trader.exchange.streams import Candle, StreamOptions

MINUTE = 60_000


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _check(got: list[Candle], pair: str, first: int) -> None:
    stamps = [c.timestamp for c in got]
    assert stamps == list(range(first, first + len(got) * MINUTE, MINUTE))  # no hole, no duplicate
    real = load_candles(bundled_data_dir(), pair, "1m", start_ms=first, end_ms=first + len(got) * MINUTE)
    assert [c.close for c in got] == pytest.approx(real["close"].tolist())
    assert [c.volume for c in got] == pytest.approx(real["volume"].tolist(), rel=1e-3)


async def test_every_closed_candle_of_every_pair_once_in_order_across_drops(sim) -> None:
    client = make_client(sim)
    got: dict[str, list[Candle]] = {p: [] for p in PAIRS}
    start = (sim.clock.now_ms() // MINUTE) * MINUTE
    # ETH's history ends three minutes earlier than BTC's: those minutes come over REST before the socket's.
    last = {PAIRS[0]: start - MINUTE, PAIRS[1]: start - 4 * MINUTE}
    streams = KlineStreams(client, {p: got[p].append for p in PAIRS}, last_closed=last,
                           options=StreamOptions(heartbeat_s=1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(streams.run(stop))
    try:
        await asyncio.wait_for(streams.connected.wait(), 5)
        for _ in range(3):  # minute by minute while connected
            sim.step(MINUTE)
            await asyncio.sleep(0.15)
        assert len(got[PAIRS[0]]) == 3  # from the socket, not after a heartbeat
        sim.step(4 * MINUTE)  # a jump: the socket shows the last ten closed minutes at most
        await asyncio.sleep(0.2)
        sim.hub.drop_all()  # the connection dies ...
        sim.step(5 * MINUTE)  # ... and the market moves on meanwhile
        await _until(lambda: len(got[PAIRS[0]]) >= 12 and len(got[PAIRS[1]]) >= 15)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    _check(got[PAIRS[0]], PAIRS[0], start)
    _check(got[PAIRS[1]], PAIRS[1], start - 3 * MINUTE)
    assert streams.reconnects >= 1 and streams.resyncs >= 1


async def test_open_candle_updates_deliver_nothing(sim) -> None:
    client = make_client(sim)
    got: list[Candle] = []
    start = (sim.clock.now_ms() // MINUTE) * MINUTE
    streams = KlineStreams(client, {PAIRS[0]: got.append}, last_closed={PAIRS[0]: start - MINUTE},
                           options=StreamOptions(heartbeat_s=30.0))
    stop = asyncio.Event()
    task = asyncio.create_task(streams.run(stop))
    try:
        await asyncio.wait_for(streams.connected.wait(), 5)
        for _ in range(5):  # seconds inside one minute: open-candle updates only
            sim.step(10_000)
            await asyncio.sleep(0.05)
        assert got == []
        sim.step(10_000)  # the minute closes
        await _until(lambda: len(got) == 1)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert got[0].timestamp == start
    assert streams.resyncs == 0  # the closed message itself, no REST


def _kline(sym: str, t: int, closed: bool, interval: str = "1m") -> dict:
    return {"e": "kline", "E": t + 1, "s": sym, "k": {
        "t": t, "T": t + MINUTE - 1, "s": sym, "i": interval, "f": 1, "L": 2, "o": "10.0", "c": "10.5", "h": "11.0",
        "l": "9.5", "v": "3.25", "n": 2, "x": closed, "q": "33.0", "V": "1.0", "Q": "10.0", "B": "0"}}


def _plain_ours(k: dict, sym: str) -> bool:
    return k["s"] == sym and k["i"] == "1m" and "e" not in k["v"]


class _Resyncs(KlineStreams):
    """Records the REST fetches a message would start instead of making them."""

    def __init__(self, on_closed) -> None:
        # No socket, no REST: messages are fed by hand; the client only sees final updates go by.
        super().__init__(SimpleNamespace(kline_event=lambda event: None), on_closed)  # type: ignore[arg-type]
        self.asked: list[tuple[str, int | None]] = []

    async def resync(self, pair: str, until_ms: int | None = None) -> int:
        self.asked.append((pair, until_ms))
        return 0


async def test_messages_read_off_the_text_as_a_full_decode_reads_them() -> None:
    """Open-candle updates and final updates in Binance's compact form are read off the text; anything else is
    decoded in full. Each case gives the same candles, the same REST fetches and the same counts either way."""
    import json

    sym, pair = "BTCUSDT", PAIRS[0]
    assert pair.startswith("BTC/")
    t = 1_716_249_600_000

    async def feed(messages: list[str]) -> tuple[dict, list, int, list[Candle]]:
        got: list[Candle] = []
        s = _Resyncs({pair: got.append})
        for m in messages:
            await s.on_text(m)
        return dict(s.last_closed), s.asked, s.messages, got

    def compact(e: object) -> str:
        return json.dumps(e, separators=(",", ":"))  # as Binance (and the simulator) send it

    def spaced(e: object) -> str:
        return json.dumps(e)  # '"x": false': not the fast path, decoded in full

    cases = [
        [_kline(sym, t, False)],  # the first update: the minute before it counts as delivered
        [_kline(sym, t, False), _kline(sym, t + 3 * MINUTE, False)],  # minutes skipped: REST for them
        [{"stream": "btcusdt@kline_1m", "data": _kline(sym, t, False)}],  # combined-stream wrapper
        [_kline("ETHBTC", t, False)],  # not a traded pair: ignored
        [_kline(sym, t, False, interval="5m")],  # another interval: ignored
        [_kline(sym, t, False), _kline(sym, t, True), _kline(sym, t + MINUTE, False)],  # a close between
        [_kline(sym, t - MINUTE, True), _kline(sym, t, True)],  # closes in a row
        [_kline(sym, t - 3 * MINUTE, True), _kline(sym, t, True)],  # a close after a gap: REST for the gap
        [{"stream": "btcusdt@kline_1m", "data": _kline(sym, t, True)}],
        [_kline("ETHBTC", t, True), _kline(sym, t, True, interval="5m")],  # not ours: ignored
        [{**_kline(sym, t, True), "k": {**_kline(sym, t, True)["k"], "v": "1e-05"}}],  # another notation
    ]
    decoded: list[str] = []
    loads = klines_module.json.loads
    klines_module.json.loads = lambda text: decoded.append(text) or loads(text)  # type: ignore[assignment]
    try:
        for case in cases:
            decoded.clear()
            fast = await feed([compact(e) for e in case])
            # Only what is not a compact 1m update of a traded pair in plain decimals is decoded in full.
            assert decoded == [compact(e) for e in case if not _plain_ours(e.get("data", e)["k"], sym)], case
            full = await feed([spaced(e) for e in case])
            assert fast == full, case
    finally:
        klines_module.json.loads = loads
    last, asked, messages, got = await feed([compact(_kline(sym, t, False)),
                                             compact(_kline(sym, t + 3 * MINUTE, False))])
    assert last[pair] == t - MINUTE and asked == [(pair, t + 3 * MINUTE)] and messages == 2 and got == []
    *_, got = await feed([compact(e) for e in cases[5]])  # a close between open updates
    assert [(c.timestamp, c.close, c.volume) for c in got] == [(t, 10.5, 3.25)]
