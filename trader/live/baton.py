"""The two hand-overs of a live candle between the engine loop thread and the Backtrader thread, made explicit.

A closed candle crosses threads twice: the engine loop pushes it to the feeds and wakes the Backtrader thread; that
thread's ``next()`` submits an order and hands it back to the loop, which sends it. Under the GIL a woken thread
runs only once the running one blocks — or after ``sys.getswitchinterval()`` (5 ms) of asking — and the running
one rarely blocks at these points (the loop goes on with the next socket message, the strategy with its other
pairs). Issue 16 measured those waits as most of the candle → order tail.

So the giver blocks, releasing the GIL, until the receiver has done its part:

- the loop, after pushing a minute's bars, waits until the Backtrader thread has handed an order over or is idle
  again (its feeds found no further bar) — the strategy's pass runs with the GIL to itself;
- the Backtrader thread, after handing an order group to the loop, waits until the loop has started sending it
  (its first step: write-ahead row, signature, request written) — the order goes out with the GIL to itself.

Both waits are bounded (``timeout_s``): a slow pass or a busy loop costs at most that before both threads run
concurrently again, as they did before; nothing depends on the wait for correctness, only for latency.
"""

from __future__ import annotations

import threading


class Baton:
    def __init__(self, timeout_s: float = 0.05) -> None:
        self.timeout_s = timeout_s
        self.active = False  # the Backtrader thread is running its live loop (no waiting for a thread not there)
        self._strategy_done = threading.Event()

    def to_strategy(self, wake: threading.Event) -> None:
        """Engine loop thread: bars are queued; wake the strategy and let it run until it hands back."""
        if not self.active:
            wake.set()
            return
        self._strategy_done.clear()
        wake.set()
        self._strategy_done.wait(self.timeout_s)

    def to_loop(self) -> None:
        """Backtrader thread: an order was handed over, or the pass is over; the loop may run."""
        self._strategy_done.set()

    def wait_sent(self, sent: threading.Event) -> None:
        """Backtrader thread: block until the loop has started sending the order just handed over."""
        self._strategy_done.set()
        if self.active:
            sent.wait(self.timeout_s)
