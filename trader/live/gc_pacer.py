"""Python's cyclic garbage collector, run when the engine has finished a minute instead of wherever it strikes.

Left to itself the collector runs inside whichever allocation crosses its threshold (700 new objects), so a
candle's way to its order pays for collections at random. Measured in bench/live_latency.py (master on 10 pairs,
200 candles, the engine's thread): ~3.5 young collections a candle (p50 0.04, p99 0.3 ms), a second-generation one
every third candle (p50 0.6, p99 1.6 ms) and full ones over the ~440,000 objects the start-up leaves (130–210 ms
each). Here:

- during start-up Python collects as usual (the preloaded history allocates a great deal). Once the engine is
  first idle — the history consumed by the strategy, nothing queued — the pacer collects the young generations and
  calls ``gc.freeze()``: what exists then (history, Backtrader's objects, every module) is left out of all later
  collections, so a full one only looks at what the run created since (1.6 ms in the bench);
- from then on, when a minute's candles have all been released (``minute_done``, from the store), the pacer waits
  until the engine is idle again — the strategy's pass over, orders and their stops out, the ledger's rows
  written — and collects the young generations there, and everything but the frozen every ``full_every_s``;
- Python's own collection stays on as the backstop, with a young threshold of ``young_threshold`` objects instead
  of 700 and the older generations' left to the pacer. The engine's minute stays below it (the bench: ~2,500 new
  objects a candle, no collection by Python in 300 candles); what else the process allocates between two quiet
  minutes can pass it (``bsmart run`` with the bot polling: 12 in 2.5 minutes, the longest 5.1 ms), and then
  Python collects at most that many objects (10,000: ~0.1–0.7 ms; a timer-driven backstop tried first collected
  whatever had piled up and took 66 ms at a bot's start);
- at stop, the collector is as it was (thresholds, ``unfreeze``).

The collector is the process's: only the pacer that found it enabled changes it (a second engine in the same
process, or a host that runs its own, is left alone, and the pacer only collects). Objects frozen at start and
dropped later are reclaimed by reference counting as before; only cycles among them wait for the stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class GcStats:
    young: int = 0  # the pacer's collections of generations 0 and 1
    full: int = 0  # the pacer's full collections
    automatic: int = 0  # Python's own, past the raised threshold
    longest_ms: float = 0.0  # the pacer's longest
    longest_automatic_ms: float = 0.0
    frozen: int = 0  # objects left out of collections (gc.get_freeze_count() at take-over)


class GcPacer:
    def __init__(self, idle: Callable[[], bool], *, full_every_s: float = 600.0, young_threshold: int = 10_000,
                 settle_s: float = 2.0, slow_ms: float = 50.0) -> None:
        self.idle = idle
        self.full_every_s = full_every_s
        self.young_threshold = young_threshold
        self.settle_s = settle_s  # the longest wait for an idle engine after a minute; then it collects anyway
        self.slow_ms = slow_ms  # a collection this long is said in the log
        self.stats = GcStats()
        self._owner = False
        self._started = False
        self._thresholds: tuple[int, int, int] | None = None
        self._collecting = False
        self._auto_started = 0.0
        self._due = asyncio.Event()
        self._last_full = 0.0

    def start(self) -> None:
        """Take collection over: the young generations collected, what exists frozen, Python's thresholds raised
        (``run`` calls this once the engine is first idle; a second call does nothing)."""
        if self._started:
            return
        self._started = True
        self._last_full = time.monotonic()
        if not gc.isenabled() or gc.get_freeze_count():
            return  # another pacer (or the host application) runs the collector: only collect, change nothing
        self._owner = True
        self.collect(1)
        gc.freeze()
        self.stats.frozen = gc.get_freeze_count()
        self._thresholds = gc.get_threshold()
        # The older generations' thresholds are counts of younger collections: high enough never to be reached
        # between the pacer's own collections, which reset them.
        gc.set_threshold(self.young_threshold, 1_000, 1_000)
        gc.callbacks.append(self._observe)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._owner:
            self._owner = False
            if self._observe in gc.callbacks:
                gc.callbacks.remove(self._observe)
            if self._thresholds is not None:
                gc.set_threshold(*self._thresholds)
            gc.unfreeze()
        s = self.stats
        log.info("garbage collection while running: %d young and %d full between minutes (longest %.1f ms), "
                 "%d by Python's raised threshold (longest %.1f ms)", s.young, s.full, s.longest_ms, s.automatic,
                 s.longest_automatic_ms)

    def minute_done(self) -> None:
        """Every pair's candle of a minute is released: collect once the engine has finished with them."""
        self._due.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not self._started and not stop.is_set():
            if self.idle():
                self.start()
            else:
                await asyncio.sleep(0.05)
        while not stop.is_set():
            await self._due.wait()  # the store cancels this task at its stop
            self._due.clear()
            deadline = loop.time() + self.settle_s
            while not self.idle() and loop.time() < deadline and not stop.is_set():
                await asyncio.sleep(0.002)
            full = time.monotonic() - self._last_full >= self.full_every_s
            self.collect(2 if full else 1)

    def collect(self, generation: int) -> None:
        self._collecting = True
        started = time.perf_counter()
        try:
            gc.collect(generation)
        finally:
            self._collecting = False
        took = (time.perf_counter() - started) * 1000
        s = self.stats
        if generation >= 2:
            s.full += 1
            self._last_full = time.monotonic()
        else:
            s.young += 1
        s.longest_ms = max(s.longest_ms, took)
        if took >= self.slow_ms:
            log.warning("garbage collection (generation %d) took %.0f ms", generation, took)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        """Python's own collections (the backstop), counted and timed."""
        if self._collecting:
            return
        if phase == "start":
            self._auto_started = time.perf_counter()
            return
        took = (time.perf_counter() - self._auto_started) * 1000
        self.stats.automatic += 1
        self.stats.longest_automatic_ms = max(self.stats.longest_automatic_ms, took)
