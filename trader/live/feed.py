"""A Backtrader live data feed fed with closed candles from the engine loop.

- The engine loop pushes every closed 1m candle (``CandleStream`` guarantees each once, in order); higher
  timeframes are built here from 1m with epoch-aligned boundaries, and a bucket is emitted only when all of its
  minutes arrived (the same rule as ``trader.data.store.resample``, so a live 5m bar equals the backtest's).
- History is preloaded over REST before the run and delivered first as *historical* bars (status DELAYED): the
  strategy's lines and indicators are warm when the first live bar arrives, and the live broker refuses orders
  decided on a historical bar.
- Indicator lines come from the strategy's causal ``compute_indicators`` on the rolling window, so the strategy
  reads ``data.rsi[0]`` as it does in the backtest — or, for a strategy with ``indicator_stream(params, feed_ms)``
  (the master), from that stream one bar at a time: the same values as ``compute_indicators`` over the whole series
  since the first preloaded bar, at O(1) per candle instead of the whole window again (issue 13's 2 ms budget).

Thread model: ``push_*`` may be called from any thread; ``load`` (Backtrader's own loop) or ``_peek``/``_apply``
(the engine's ``LiveCerebro``) run where Backtrader runs — live, in the engine loop's strategy greenlet
(trader/live/runner.py), whose ``wait`` gives the loop the thread until a bar (or a broker event) arrives; a plain
``threading.Event`` does the same for a feed driven from a thread of its own.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import numpy as np

from trader.backtest.feeds import ms_to_bt_one
from trader.strategy.base import Candles, FuturesStrategy

MINUTE = 60_000
_BASE = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bar:
    ts_ms: int  # open time, UTC ms
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class Prepared:
    """A closed 1m candle's feed work, done on arrival and queued for Backtrader when the store releases it."""

    ts_ms: int
    close: float
    bar: Bar | None  # the bar this minute completed (None inside a higher-timeframe bucket)
    ind: Mapping[str, float] | None  # its indicator row


class BarAggregator:
    """Builds ``tf_ms`` bars from consecutive 1m candles; a bucket with any minute missing is dropped."""

    def __init__(self, tf_ms: int) -> None:
        if tf_ms % MINUTE:
            raise ValueError("timeframes are whole minutes")
        self.tf_ms = tf_ms
        self.need = tf_ms // MINUTE
        self._bucket: int | None = None
        self._n = 0
        self._last = -1
        self._o = self._h = self._l = self._c = self._v = 0.0

    def add(self, ts_ms: int, o: float, h: float, low: float, c: float, v: float) -> Bar | None:
        if self.need == 1:
            return Bar(ts_ms, o, h, low, c, v)
        bucket = ts_ms - ts_ms % self.tf_ms
        if bucket != self._bucket:
            self._bucket, self._n = bucket, 0
            self._o, self._h, self._l, self._v = o, h, low, 0.0
        elif ts_ms != self._last + MINUTE:
            self._n = -10**9  # a hole inside the bucket: never emit it
        self._last = ts_ms
        self._h, self._l, self._c = max(self._h, h), min(self._l, low), c
        self._v += v
        self._n += 1
        if ts_ms + MINUTE == bucket + self.tf_ms:
            complete = self._n == self.need
            self._bucket = None
            if complete:
                return Bar(bucket, self._o, self._h, self._l, self._c, self._v)
        return None


class RollingColumns:
    """Fixed-width rolling window of float columns in preallocated numpy arrays (twice the width, so a bar is one
    store and the window a view; the occasional copy back to the front is amortised)."""

    def __init__(self, names: Sequence[str], width: int) -> None:
        self.width = max(1, int(width))
        self._buf = {k: np.empty(2 * self.width) for k in names}
        self._end = 0

    def append(self, values: Mapping[str, float]) -> None:
        if self._end == 2 * self.width:
            for a in self._buf.values():
                a[: self.width] = a[self.width:]
            self._end = self.width
        for k, a in self._buf.items():
            a[self._end] = values[k]
        self._end += 1

    def view(self) -> dict[str, np.ndarray]:
        start = max(0, self._end - self.width)
        return {k: a[start:self._end] for k, a in self._buf.items()}

    def __len__(self) -> int:
        return min(self._end, self.width)


_CLASSES: dict[tuple[str, ...], type] = {}
_EMPTY = object()


def live_feed_class(extra_lines: Sequence[str]) -> type[LiveFeed]:
    key = tuple(extra_lines)
    cls = _CLASSES.get(key)
    if cls is None:
        cls = type(f"LiveFeed_{len(_CLASSES)}", (LiveFeed,), {"lines": key})
        _CLASSES[key] = cls
    return cls


class LiveFeed(bt.feed.DataBase):
    params = (
        ("pair", ""),
        ("strategy_cls", None),
        ("strategy_params", None),
        ("tf_ms", MINUTE),
        ("window", 1500),  # bars kept for indicator computation
        ("qcheck", 0.25),  # longest wait for a bar before Backtrader loops (notifications, stop requests)
        ("wake", None),  # the engine's StrategyRunner (or a threading.Event), shared with the broker
        ("lock", None),  # threading.Lock shared by the feeds of one engine: the bars it releases appear together
    )

    def __init__(self) -> None:
        super().__init__()
        self._q: queue.SimpleQueue[tuple[Bar, Mapping[str, float], bool] | None] = queue.SimpleQueue()
        self._head: object = _EMPTY  # an item taken off the queue by ``_peek`` and not yet delivered
        self._agg = BarAggregator(int(self.p.tf_ms))
        self._win = RollingColumns((*_BASE, "ts"), int(self.p.window))
        self._wake: Any = self.p.wake or threading.Event()
        # A long run of bars (the preloaded history) gives the engine loop a turn now and then.
        self._slice: Any = getattr(self._wake, "slice", None)
        self._lock: threading.Lock = self.p.lock or threading.Lock()
        self._ind_names = tuple(self.p.strategy_cls.indicator_lines) if self.p.strategy_cls else ()
        self._slots: list[tuple[str, Any]] | None = None  # (alias, line buffer) in Backtrader's line order
        self._appendable = False
        self._params: Mapping[str, Any] = dict(self.p.strategy_params or {})
        make_stream = getattr(self.p.strategy_cls, "indicator_stream", None) if self._ind_names else None
        self._stream: Any = make_stream(self._params, int(self.p.tf_ms)) if make_stream else None
        self.bar_is_live = False
        self.last_close = math.nan
        self.last_bar_ms: int | None = None  # open time of the last bar pushed
        self.last_minute_ms: int | None = None  # open time of the last 1m candle pushed
        self._prepared_ms: int | None = None  # open time of the last 1m candle prepared (delivered or not yet)
        self.delivered = 0  # bars handed to Backtrader
        self._seen_len = 0  # len(self) when the strategy last took its decision for this pair (take_due)
        self._owed = False  # a bar-closing minute that never came: the strategy still decides on the standing bar
        self._went_live = False
        self._stopped = False

    # -- Backtrader hooks ---------------------------------------------------------------------------------------
    def islive(self) -> bool:
        return True

    def haslivedata(self) -> bool:
        return self._head is not _EMPTY or not self._q.empty()

    def start(self) -> None:
        super().start()
        self.put_notification(self.DELAYED)

    def stop(self) -> None:
        self._stopped = True

    def _peek(self) -> tuple[Bar, Mapping[str, float], bool] | None | bool:
        """The next item without taking it (False: nothing queued). LiveCerebro moves only the feeds whose next
        bar is the earliest, as Backtrader's loop does by loading every feed and rewinding the later ones."""
        with self._lock:
            return self._peek_locked()

    def _peek_locked(self) -> tuple[Bar, Mapping[str, float], bool] | None | bool:
        """``_peek`` with the feeds' lock already held (LiveCerebro takes it once for all its feeds)."""
        if self._head is _EMPTY:
            if self._q.empty():  # only this consumer takes items: not empty now means get_nowait returns one
                return False
            self._head = self._q.get_nowait()
        return self._head  # type: ignore[return-value]

    def get_notifications(self) -> list[Any]:
        """Backtrader's, without its marker's round trip through the deque when nothing is queued: Cerebro asks
        every feed twice per pass, on the way from a candle to its order."""
        if not self.notifs:
            return []
        return list(super().get_notifications())

    def _take(self) -> tuple[Bar, Mapping[str, float], bool] | None | bool:
        item = self._peek()
        if item is not False:
            self._head = _EMPTY  # only the consumer (Backtrader's side) touches the head
        return item

    def load(self) -> bool | None:
        """Backtrader's ``load`` moves every line forward before asking ``_load`` and back again when there is no
        bar, so each live pass with nothing new (a fill note, a command) cost a forward and a backward of every
        line of every feed. Ask first, and for a bar append each line's value in one step (what ``forward`` then
        ``line[0] = value`` do to an unbounded line without bindings, minus a method call and a property per
        line). This feed has no filters, bar stack, time zone or date bounds, which the base ``load`` handles."""
        item = self._next_item()
        if item is False:
            return None
        if item is None:
            return False
        self._apply(item)  # type: ignore[arg-type]
        return True

    def _apply(self, item: tuple[Bar, Mapping[str, float], bool]) -> None:
        """Move every line one bar forward with ``item``'s values."""
        bar, ind, live = item
        if self._slice is not None:
            self._slice()
        base = {"datetime": ms_to_bt_one(bar.ts_ms), "open": bar.open, "high": bar.high, "low": bar.low,
                "close": bar.close, "volume": bar.volume, "openinterest": 0.0}
        lines = self.lines
        if self._slots is None:
            self._slots = [(name, getattr(lines, name)) for name in lines.getlinealiases()]
            self._appendable = all(lb.mode == lb.UnBounded and not lb.bindings for _n, lb in self._slots)
        nan = math.nan
        if self._appendable:
            for name, lb in self._slots:
                lb._idx += 1
                lb.lencount += 1
                lb.array.append(base[name] if name in base else ind.get(name, nan))
        else:
            self.forward()
            for name, lb in self._slots:
                lb[0] = base[name] if name in base else ind.get(name, nan)
        self.bar_is_live = live
        self.delivered += 1
        if live and not self._went_live:
            self._went_live = True
            self.put_notification(self.LIVE)

    def take_due(self) -> bool:
        """Asked by the strategy once per pass (trader.strategy.base.FuturesStrategy.due_datas): does this pair
        get a decision now? Yes when Backtrader moved it to a new bar since the last ask, or when the store gave
        up waiting for the candle that would have closed its bar (``skip_minute``) — a backtest pass decides such a
        pair on its standing bar too. Length, not a flag set in ``load``: Backtrader rewinds a bar it loaded too
        early and later moves to it again without loading it."""
        n = self.lines[0].lencount  # len(self), without three calls through Backtrader's line classes
        due = n > self._seen_len or self._owed
        self._seen_len = n
        self._owed = False
        return due

    def skip_minute(self, ts_ms: int) -> None:
        """The store moved past ``ts_ms`` without this pair's candle (another pair is a minute further on). Its
        bucket is incomplete (the aggregator drops it when a later minute arrives, as the backtest's resample
        does); if this minute would have closed a bar, the strategy still owes the pair its decision. Should the
        candle come after all, it is delivered late, and decided then too."""
        if self.last_minute_ms is not None and ts_ms <= self.last_minute_ms:
            return  # this pair is already past it (a late candle of another pair reopened the minute)
        if (ts_ms + MINUTE) % int(self.p.tf_ms) == 0:
            self._owed = True

    def _tick_fill(self, force: bool = False) -> None:
        """No ``tick_<line>`` copies: they serve Backtrader's own broker and resampling; ``LiveBroker`` reads the
        lines (as the backtest's feed, trader/backtest/feeds.py)."""

    def _tick_nullify(self) -> None:
        pass

    def _next_item(self) -> tuple[Bar, Mapping[str, float], bool] | None | bool:
        """The next queued bar (None: the end), or False when none came within Backtrader's ``_qcheck``."""
        item = self._take()
        if item is False:
            # Backtrader sets _qcheck to 0 when another feed already has a bar waiting.
            self._wake.wait(self._qcheck if self._qcheck else 0.0)
            self._wake.clear()
            item = self._take()
        return item

    # -- producers ----------------------------------------------------------------------------------------------
    def preload_history(self, bars: Sequence[Bar]) -> None:
        """Queue historical bars (oldest first) with indicators computed over the whole series at once."""
        if not bars:
            return
        if self._stream is not None:
            names = self._ind_names
            for b in bars:
                row = self._stream.step(b.ts_ms, b.open, b.high, b.low, b.close, b.volume)
                self._q.put((b, {k: row[k] for k in names}, False))
            self._preloaded(bars)
            return
        for b in bars:
            self._append(b)
        ind = self._compute({
            "ts": np.array([b.ts_ms for b in bars], dtype="float64"),
            **{k: np.array([getattr(b, k) for b in bars], dtype="float64") for k in _BASE},
        })
        for i, b in enumerate(bars):
            self._q.put((b, {k: float(v[i]) for k, v in ind.items()}, False))
        self._preloaded(bars)

    def _preloaded(self, bars: Sequence[Bar]) -> None:
        self.last_bar_ms = bars[-1].ts_ms
        self.last_minute_ms = bars[-1].ts_ms + int(self.p.tf_ms) - MINUTE
        self.last_close = bars[-1].close
        self._wake.set()

    def push_minute(self, ts_ms: int, o: float, h: float, low: float, c: float, v: float, *,
                    wake: bool = True) -> Bar | None:
        """A closed live 1m candle; returns the bar it completed, if any. With several feeds, the store pushes a
        minute for all of them holding the shared lock, then wakes Backtrader once (``wake=False`` here)."""
        prepared = self.prepare_minute(ts_ms, o, h, low, c, v)
        return None if prepared is None else self.deliver(prepared, wake=wake)

    def prepare_minute(self, ts_ms: int, o: float, h: float, low: float, c: float, v: float) -> Prepared | None:
        """The work of a closed 1m candle that depends on nothing but this feed's candles (aggregation, the
        indicator row), done when the candle arrives; ``deliver`` hands it to Backtrader when the store releases
        the minute (every pair's candle in, the desk's gate passed). The store waits for the other pairs' candles
        anyway, so this work is off the candle → order path. Call ``deliver`` for every prepared minute, in order."""
        if self.last_minute_ms is not None and ts_ms <= self.last_minute_ms:
            return None  # already part of the history
        if self._prepared_ms is not None and ts_ms <= self._prepared_ms:
            return None
        self._prepared_ms = ts_ms
        bar = self._agg.add(ts_ms, o, h, low, c, v)
        ind: Mapping[str, float] | None = None
        if bar is not None:
            # Computed here, with the window exactly as of this bar: a later bar must never leak into it.
            if self._stream is not None:
                ind = self._stream.step(bar.ts_ms, bar.open, bar.high, bar.low, bar.close, bar.volume)
            else:
                self._append(bar)
                ind = self._indicators_now()
        return Prepared(ts_ms, c, bar, ind)

    def deliver(self, prepared: Prepared, *, wake: bool = True) -> Bar | None:
        """Queue a prepared minute for Backtrader; returns the bar it completed, if any."""
        self.last_minute_ms = prepared.ts_ms
        self.last_close = prepared.close
        bar = prepared.bar
        if bar is None:
            return None
        self.last_bar_ms = bar.ts_ms
        self._q.put((bar, prepared.ind, True))
        if wake:
            self._wake.set()
        return bar

    def end(self) -> None:
        self._q.put(None)
        self._wake.set()

    # -- indicators ---------------------------------------------------------------------------------------------
    def _append(self, b: Bar) -> None:
        self._win.append({"ts": float(b.ts_ms), "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                          "volume": b.volume})

    def _indicators_now(self) -> dict[str, float]:
        if not self._ind_names:
            return {}
        return {k: float(v[-1]) if len(v) else math.nan for k, v in self._compute(self._win.view()).items()}

    def _compute(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cls: type[FuturesStrategy] | None = self.p.strategy_cls
        if cls is None or not self._ind_names:
            return {}
        candles = Candles(arrays["ts"].astype("int64"), arrays["open"], arrays["high"], arrays["low"],
                          arrays["close"], arrays["volume"])
        return cls.compute_indicators(candles, self._params)
