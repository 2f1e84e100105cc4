"""Python's cyclic garbage collector, run when the engine has finished a minute instead of wherever it strikes.

Left to itself the collector runs inside whichever allocation crosses its threshold, so a candle's way to its order
pays for collections at random. Measured in bench/live_latency.py (master on 10 pairs, 200 candles, the engine's
thread): ~3.5 young collections a candle (p50 0.04, p99 0.3 ms), a second-generation one every third candle (p50
0.6, p99 1.6 ms) and full ones over the ~440,000 objects the start-up leaves (170–190 ms each, three in the run).
Here, while the engine runs:

- at start, ``gc.freeze()``: what exists then (the preloaded history, Backtrader's objects, every module) is left
  out of all later collections, so a full one only looks at what the run created since;
- automatic collection is off. When a minute's candles have all been released (``minute_done``, from the store),
  the pacer waits until the engine is idle — the strategy's pass over, orders and their stops out, the ledger's
  rows written — and collects the young generations there, and everything (but the frozen) every ``full_every_s``;
- a backstop: when that does not come (no candles: a dead socket, the exchange in maintenance) and allocations
  since the last collection pass ``backstop``, the young generations are collected on a ``tick_s`` timer;
- at stop, the collector is as it was (``unfreeze``, automatic collection back on).

The collector is the process's: only the pacer that found it enabled changes it (a second engine in the same
process leaves it alone and only collects). Objects frozen at start and dropped later are reclaimed by reference
counting as before; only cycles among them wait for the stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class GcStats:
    young: int = 0  # collections of generations 0 and 1
    full: int = 0
    backstop: int = 0  # young collections the timer ran because no quiet minute came
    longest_ms: float = 0.0
    frozen: int = 0  # objects left out of collections (gc.get_freeze_count() at start)
    times_ms: list[float] = field(default_factory=list)  # the last 100 collections' durations


class GcPacer:
    def __init__(self, idle: Callable[[], bool], *, full_every_s: float = 600.0, tick_s: float = 1.0,
                 backstop: int = 50_000, settle_s: float = 2.0, slow_ms: float = 50.0) -> None:
        self.idle = idle
        self.full_every_s = full_every_s
        self.tick_s = tick_s
        self.backstop = backstop
        self.settle_s = settle_s  # the longest wait for an idle engine after a minute; then it collects anyway
        self.slow_ms = slow_ms  # a collection this long is said in the log
        self.stats = GcStats()
        self._owner = False
        self._due = asyncio.Event()
        self._last_full = 0.0

    def start(self) -> None:
        """On the engine loop, once the history is loaded: freeze what exists and take collection over."""
        self._last_full = time.monotonic()
        if not gc.isenabled():
            return  # another pacer (or the host application) runs the collector: only collect, change nothing
        self._owner = True
        gc.freeze()
        gc.disable()
        self.stats.frozen = gc.get_freeze_count()

    def stop(self) -> None:
        if self._owner:
            self._owner = False
            gc.unfreeze()
            gc.enable()
        s = self.stats
        log.info("garbage collection while running: %d young, %d full (%d by the backstop); longest %.1f ms",
                 s.young, s.full, s.backstop, s.longest_ms)

    def minute_done(self) -> None:
        """Every pair's candle of a minute is released: collect once the engine has finished with them."""
        self._due.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._due.wait(), self.tick_s)
            except asyncio.TimeoutError:
                if gc.get_count()[0] >= self.backstop:
                    self.stats.backstop += 1
                    self.collect(1)
                continue
            self._due.clear()
            deadline = loop.time() + self.settle_s
            while not self.idle() and loop.time() < deadline and not stop.is_set():
                await asyncio.sleep(0.002)
            full = time.monotonic() - self._last_full >= self.full_every_s
            self.collect(2 if full else 1)

    def collect(self, generation: int) -> None:
        started = time.perf_counter()
        gc.collect(generation)
        took = (time.perf_counter() - started) * 1000
        s = self.stats
        if generation >= 2:
            s.full += 1
            self._last_full = time.monotonic()
        else:
            s.young += 1
        s.longest_ms = max(s.longest_ms, took)
        s.times_ms.append(took)
        del s.times_ms[:-100]
        if took >= self.slow_ms:
            log.warning("garbage collection (generation %d) took %.0f ms", generation, took)
