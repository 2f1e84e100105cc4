"""A change signal shared by long polls and test waits. The world changes from the server's loop and from driver
calls in other threads or loops, so waiters register with the loop they run on (or block on a condition) and every
change wakes all of them to re-check what they are waiting for."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Pulse:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._condition = threading.Condition()

    def fire(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)
        with self._condition:
            self._condition.notify_all()

    async def wait_until(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        """The first truthy result of probe(), re-checked after every change; None when timeout passes first."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            future: asyncio.Future[None] = loop.create_future()
            # Registering before probing means a change between the two still wakes us.
            with self._lock:
                self._waiters.append((loop, future))
            result = probe()
            remaining = deadline - time.monotonic()
            if result or remaining <= 0:
                self._forget(future)
                return result or None
            try:
                await asyncio.wait_for(future, remaining)
            except TimeoutError:
                self._forget(future)
                result = probe()
                return result or None

    def wait_until_blocking(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                result = probe()
                remaining = deadline - time.monotonic()
                if result or remaining <= 0:
                    return result or None
                self._condition.wait(remaining)

    def _forget(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiters = [(lp, f) for lp, f in self._waiters if f is not future]
