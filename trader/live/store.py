"""The live store: the exchange client's market data and account streams, wired to feeds and the desk.

- history: closed 1m candles over REST, paged, resampled to the strategy's timeframe with the backtest's rule
  (epoch-aligned, complete buckets only), so indicators are warm before the first live bar;
- candles: one ``KlineStreams`` socket for all pairs (every closed 1m candle once, in order, REST resync after gaps;
  the socket's own messages, not ccxt.pro's generic handler: issue 16's latency); each candle passes the desk's
  gate (``OrderDesk.settle``), is prepared by its feed (on arrival for a whole-minute strategy; when its turn comes
  for one that decides in pair order) and is released to Backtrader in whitelist order (``_release``: per pair for
  a strategy that decides in pair order, per minute otherwise);
- account: ``AccountStream`` order updates go to the desk; after a reconnect the desk resyncs over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

import pandas as pd

from trader.data.store import resample
from trader.exchange.client import ExchangeClient
from trader.exchange.klines import KlineStreams
from trader.exchange.streams import AccountStream, Candle, StreamOptions
from trader.live.close_spin import CloseSpinner
from trader.live.desk import OrderDesk
from trader.live.feed import MINUTE, Bar, LiveFeed, Prepared
from trader.live.gc_pacer import GcPacer

log = logging.getLogger(__name__)


class LiveStore:
    def __init__(self, client: ExchangeClient, desk: OrderDesk, *, stream_options: StreamOptions | None = None,
                 account_sync_s: float = 60.0, in_pair_order: bool = False):
        self.client = client
        self.account_sync_s = account_sync_s
        self.desk = desk
        self.stream_options = stream_options
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.klines: KlineStreams | None = None
        self.account_stream: AccountStream | None = None
        self.on_bar: Callable[[str, Bar], None] | None = None  # observers (bench, status)
        self.feed_lock = threading.Lock()  # shared with the feeds (LiveFeed's ``lock``)
        self._feeds: dict[str, LiveFeed] = {}
        self._order: list[str] = []
        self._settled: Callable[[], Awaitable[None]] | None = None
        # minute -> pair -> the feed's prepared candle (trader.live.feed.Prepared; the candle itself until its turn
        # in pair order), until every pair has it
        self._pending: dict[int, dict[str, Prepared | Candle | None]] = {}
        self._newest = 0  # the latest minute any pair has delivered
        self.in_pair_order = in_pair_order  # release each pair's candle as soon as the pairs before it are in
        self._progress: dict[int, int] = {}  # minute -> index (whitelist order) of the next pair to release
        self.pacer: GcPacer | None = None  # garbage collection after each minute's work (trader/live/gc_pacer.py)
        self.spinner: CloseSpinner | None = None  # the loop awake when candles are due (trader/live/close_spin.py)

    async def history(self, pair: str, tf_ms: int, bars: int) -> list[Bar]:
        """The last ``bars`` complete bars of ``tf_ms`` before now, built from closed 1m candles."""
        now = await self.client.fetch_time()
        end = now - now % MINUTE  # open time of the candle still forming
        start = (end - bars * tf_ms) // tf_ms * tf_ms
        rows: list[list[float]] = []
        since = start
        while since < end:
            page = await self.client.fetch_ohlcv(pair, "1m", since, 1000)
            page = [r for r in page if since <= int(r[0]) < end]
            if not page:
                break
            rows.extend(page)
            since = int(page[-1][0]) + MINUTE
        if not rows:
            return []
        df = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
        df["timestamp"] = df["timestamp"].astype("int64")
        df = df.drop_duplicates("timestamp").sort_values("timestamp")
        if tf_ms != MINUTE:
            df = resample(df, "1m", f"{tf_ms // MINUTE}m")
        return [Bar(int(r.timestamp), float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume))
                for r in df.itertuples(index=False)][-bars:]

    def start(self, feeds: dict[str, LiveFeed]) -> None:
        """Start the streams (on the engine loop)."""
        loop = asyncio.get_running_loop()
        self.attach(feeds)
        self.klines = KlineStreams(self.client, {pair: self._candle_handler(feed) for pair, feed in feeds.items()},
                                   last_closed={pair: feed.last_minute_ms for pair, feed in feeds.items()},
                                   options=self.stream_options)
        self._tasks.append(loop.create_task(self.klines.run(self._stop), name="candles"))
        self.account_stream = AccountStream(self.client, on_orders=self.desk.on_orders,
                                            on_reconnect=self.desk.resync)
        self._tasks.append(loop.create_task(self.account_stream.run(self._stop), name="account"))
        if self.account_sync_s > 0:
            self._tasks.append(loop.create_task(self._account_checks(), name="account-check"))
        if self.pacer is not None:
            self._tasks.append(loop.create_task(self.pacer.run(self._stop), name="gc-pacer"))

    def attach(self, feeds: dict[str, LiveFeed]) -> None:
        """The feeds candles go to, in the whitelist's order (the strategy's datas)."""
        self._feeds = dict(feeds)
        self._order = list(feeds)
        self._settled = getattr(self.desk.wake, "settled", None)  # StrategyRunner.settled (None: a plain event)
        self.desk.candles_pending = self.candles_pending

    def candle_handler(self, pair: str) -> Callable[[Candle], Awaitable[None]]:
        """What the candle stream calls with each closed 1m candle of ``pair``."""
        return self._candle_handler(self._feeds[pair])

    async def _account_checks(self) -> None:
        # Events lost without a reconnect (they happen) must not leave the engine out of step for long.
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.account_sync_s)
            if not self._stop.is_set():
                await self.desk.check_account()

    async def wait_connected(self, timeout: float) -> bool:
        """True once the candle socket has had its first kline message (the subscription is live)."""
        if self.klines is None:
            return False
        try:
            await asyncio.wait_for(self.klines.connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _candle_handler(self, feed: LiveFeed) -> Callable[[Candle], Awaitable[None]]:
        async def on_closed(c: Candle) -> None:
            if self.spinner is not None and c.timestamp > self._newest:
                self.spinner.arrived()  # the minute's first closed kline
            # The gate first: the strategy must see the fills this candle caused before deciding on it.
            if not self.desk.gate_open(c.pair):
                await self.desk.settle(c.pair, c.low, c.high)
            slot = self._pending.setdefault(c.timestamp, {})
            self._newest = max(self._newest, c.timestamp)
            if self._defers:
                # Its feed work waits until its turn: a candle the pairs before it hold back must not delay theirs.
                slot.setdefault(c.pair, c)
                released = self._release(arrived=c.pair)
                while released:
                    # This pair's pass (and its order's first step) before anything else: then the candles it
                    # held back are prepared and go in one pass, before the next candle is read.
                    await self._settled()  # type: ignore[misc]
                    released = self._release()
                return
            # The feed's own work for this candle now, while other pairs' candles are still on their way.
            prepared = feed.prepare_minute(c.timestamp, c.open, c.high, c.low, c.close, c.volume)
            if prepared is not None or c.pair not in slot:  # a repeat (None) never replaces the prepared minute
                slot[c.pair] = prepared
            self._release()
        return on_closed

    @property
    def _defers(self) -> bool:
        """Candles are prepared when released (in pair order, with a runner to wait for), not on arrival."""
        return self.in_pair_order and self._settled is not None

    def _release(self, arrived: str | None = None) -> bool:
        """Hand minutes to the feeds in order. A minute is complete when every pair has it, or — for a pair that
        lags (REST resync, a quiet socket) — once another pair is a minute further on: the lagging pair is skipped
        (``LiveFeed.skip_minute``), as the backtest aligns pairs by time.

        How a minute goes out depends on the strategy. One that decides in pair order (``decides_in_pair_order``,
        the managed strategies and the master) gets each pair's candle as soon as it and every pair before it in
        the whitelist are in: the strategy's pass for that pair runs then, so its order does not wait for the
        other pairs' candles. Its decision sees what the backtest's pass sees at that pair — the pairs before it
        at this minute, the ones after it at the last. Any other strategy gets the whole minute at once: one
        next() per minute with every pair's bar, as in the backtest.

        In pair order a candle is kept as it came (``Candle``) and its feed work is done here, when its turn
        comes. Called for the candle that just ``arrived``, the release stops after it at the first candle still
        to prepare: those it held back go in the next call, after its pass."""
        order = self._order
        released = False
        while self._pending:
            ts = min(self._pending)
            got = self._pending[ts]
            late = ts < self._newest  # another pair is past this minute: do not wait for the missing ones
            if not self.in_pair_order and len(got) < len(order) and not late:
                break
            bars: list[tuple[str, Bar | None]] = []
            i = self._progress.get(ts, 0)
            with self.feed_lock:
                while i < len(order):
                    pair = order[i]
                    feed = self._feeds[pair]
                    if pair in got:
                        p = got[pair]
                        if isinstance(p, Candle):
                            if arrived is not None and pair != arrived and (bars or released):
                                break
                            p = feed.prepare_minute(p.timestamp, p.open, p.high, p.low, p.close, p.volume)
                        bars.append((pair, None if p is None else feed.deliver(p, wake=False)))
                    elif late:
                        feed.skip_minute(ts)
                    else:
                        break
                    i += 1
            released = released or bool(bars) or late
            if self.on_bar is not None:
                for pair, bar in bars:
                    if bar is not None:
                        self.on_bar(pair, bar)
            if i < len(order):
                self._progress[ts] = i
                break
            del self._pending[ts]
            self._progress.pop(ts, None)
            if self.pacer is not None:
                self.pacer.minute_done()
        if released:
            self.desk.wake.set()  # the strategy's pass runs once this handler has returned (trader/live/runner.py)
        if not self._pending:
            self.desk.candles_done()  # after the wake: the strategy's pass goes first
        return released

    def candles_pending(self) -> bool:
        """A minute is on its way to the strategy (some of its candles are in and not all released), or due now
        (the loop is polling for it: trader/live/close_spin.py)."""
        return bool(self._pending) or (self.spinner is not None and self.spinner.polling)

    async def stop(self) -> None:
        self._stop.set()
        if self.desk.candles_pending == self.candles_pending:
            self.desk.candles_pending = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.pacer is not None:
            self.pacer.stop()
            self.pacer = None
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None
