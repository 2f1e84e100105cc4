"""The live strategy on the engine loop's own thread: Backtrader's live loop as a greenlet the loop resumes.

Issue 16 measured the candle → order path with Backtrader on a thread of its own: a closed candle crossed threads
twice (the loop pushes it and wakes the strategy thread; the strategy hands its order back to the loop), and under
the GIL each crossing waited for an OS wake-up or the 5 ms switch interval. Here there is one thread: the loop
runs ``cerebro.run()`` inside a greenlet and switches into it when the strategy has something to do (bars pushed,
a desk note, a command); the greenlet switches back when its feeds find nothing more (``wait``). An order the
strategy submits is handed to the desk directly and the greenlet steps aside once (``pause``) so the send task's
first step — write-ahead row, signature, request written — runs before the rest of the strategy's pass. A switch
is a few microseconds and nothing waits for another thread.

What this asks of strategy code (it always ran between the loop's tasks in effect, now literally on the loop):
no blocking wait for something only the loop can do (``EngineHost.call`` refuses on this thread), and a long
stretch of work — the preloaded history — gives the loop a turn every ``slice_s`` (``slice``), so sockets, pings
and the service's coroutines are not held up for seconds.

``set`` (any thread) is the wake-up: ``OrderDesk.wake``, the feeds' ``wake`` and ``LiveBroker.wake`` are this
object, with ``threading.Event``'s ``set``/``wait``/``clear`` so code written against an event runs unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from greenlet import greenlet

log = logging.getLogger(__name__)


class StrategyRunner:
    def __init__(self, loop: asyncio.AbstractEventLoop, slice_s: float = 0.02, slow_s: float = 0.25) -> None:
        self.loop = loop
        self.slice_s = slice_s
        self.slow_s = slow_s  # a turn of the strategy this long holds the exchange side up: said in the log
        self.longest_s = 0.0  # the longest single turn so far (the preloaded history is sliced, so it is live work)
        self.slow_turns = 0
        self._slow_said = -1e9
        self.done = threading.Event()  # the strategy's run has returned (or was never started)
        self.done.set()
        self._thread_id: int | None = None
        self._glet: greenlet | None = None
        self._scheduled = False
        self._pending: asyncio.Handle | None = None  # the scheduled ``_resume``
        self._woken = False
        self._timer: asyncio.TimerHandle | None = None
        self._resumed_at = 0.0
        self._settled: list[asyncio.Future[None]] = []  # loop-side waiters for the strategy to park in ``wait``

    # -- the loop side --------------------------------------------------------------------------------------------
    def launch(self, run: Callable[[], Any]) -> None:
        """Any thread: start ``run`` on the loop (``done`` is clear from now until it returns)."""
        self.done.clear()
        self.loop.call_soon_threadsafe(self._start, run)

    def _start(self, run: Callable[[], Any]) -> None:
        """On the loop's thread (a greenlet belongs to the thread that made it): the greenlet for ``run``."""
        self._thread_id = threading.get_ident()

        def main() -> None:
            try:
                run()
            finally:
                self.done.set()
                self._release_settled()

        self._glet = greenlet(main)
        self._schedule()

    def set(self) -> None:
        """Any thread: the strategy has something to do (a bar, a note, a command)."""
        if self._thread_id is None or threading.get_ident() != self._thread_id:
            try:
                self.loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closed: nothing runs the strategy any more
                pass
            return
        self._wake()

    def clear(self) -> None:
        self._woken = False

    def in_strategy(self) -> bool:
        """True on the strategy's greenlet (Backtrader code), False on the loop's own."""
        return self._glet is not None and greenlet.getcurrent() is self._glet

    async def settled(self) -> None:
        """On the loop: return once the strategy has done what it had to do — parked in ``wait`` with nothing
        more to do, or not running. The candle stream awaits this after releasing a pair's candle, so the next
        message is read after this pair's pass and its order's first step (write-ahead row, request on the wire),
        not before them."""
        if self._glet is None or self._glet.dead or not self._scheduled:
            return
        if self._pending is not None and not self.in_strategy():
            # Resume it now rather than after the loop's next turn (a select and whatever else is ready): the
            # candle that woke it is the one waiting here. It runs to its first pause (an order's send) or its
            # wait; after a pause the loop resumes it as usual.
            self._pending.cancel()
            self._resume()
            if self._glet is None or self._glet.dead or not self._scheduled:
                return
        fut = self.loop.create_future()
        self._settled.append(fut)
        await fut

    def _wake(self) -> None:
        self._woken = True
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled or self._glet is None or self._glet.dead:
            return
        self._scheduled = True
        self._pending = self.loop.call_soon(self._resume)

    def _on_timer(self) -> None:
        self._timer = None
        self._schedule()

    def _resume(self) -> None:
        self._scheduled = False
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        glet = self._glet
        if glet is None or glet.dead:
            return
        self._resumed_at = started = time.perf_counter()
        try:
            glet.switch()
        except BaseException:  # the run() wrapper catches a strategy's errors; this is a bug in the runner itself
            log.exception("live strategy greenlet failed")
        took = time.perf_counter() - started
        self.longest_s = max(self.longest_s, took)
        if took >= self.slow_s:
            self.slow_turns += 1
            if started - self._slow_said >= 60.0:
                self._slow_said = started
                log.warning("the strategy held the engine loop for %.0f ms in one turn (%d such turns so far): "
                            "streams, fills and orders waited meanwhile", took * 1000, self.slow_turns)

    # -- the strategy side (inside the greenlet) -----------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Inside the strategy: give the loop the thread until ``set`` or ``timeout`` seconds; True if woken.
        Outside it (a test driving a feed by hand) nothing can wake it: it only reports the flag."""
        if self._woken or not self.in_strategy():
            woke, self._woken = self._woken, False
            return woke
        if timeout is not None and timeout <= 0:
            return False
        if timeout is not None:
            self._timer = self.loop.call_later(timeout, self._on_timer)
        self._release_settled()
        self._park()
        woke, self._woken = self._woken, False
        return woke

    def pause(self) -> None:
        """Inside the strategy: let the loop run what is ready now (an order's send), then carry on."""
        if not self.in_strategy():
            return
        self._schedule()
        self._park()

    def slice(self) -> None:
        """Inside the strategy, during a long stretch of work: give the loop a turn every ``slice_s``."""
        if time.perf_counter() - self._resumed_at > self.slice_s:
            self.pause()

    def _release_settled(self) -> None:
        waiters, self._settled = self._settled, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _park(self) -> None:
        glet = self._glet
        assert glet is not None and glet.parent is not None
        glet.parent.switch()
