"""The engine's own thread and asyncio loop.

Everything that talks to the exchange (client, streams, the broker's order placement) lives on this loop, so the
bot's loop never waits on the exchange and the exchange side never waits on the bot. Other threads hand work over
with ``submit`` (fire and forget, a ``concurrent.futures.Future``) or ``call`` (wait for the result).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class HostError(RuntimeError):
    pass


class EngineHost:
    def __init__(self, name: str = "live-engine") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> EngineHost:
        with self._lock:
            if self.running:
                return self
            self._ready.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        if not self._ready.wait(10):
            raise HostError("engine loop did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            # Whatever is still scheduled gets a chance to run its finally blocks (sockets, sessions).
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task on the loop, close it and join the thread. Safe to call twice or from any thread
        except the host's own."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            if threading.current_thread() is thread:
                raise HostError("EngineHost.stop() called from the engine's own thread")
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                raise HostError(f"engine thread did not stop within {timeout}s")
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise HostError("engine loop is not running")
        return self._loop

    def in_host_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    # -- hand-over ----------------------------------------------------------------------------------------------
    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the engine loop from any thread; never blocks."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except BaseException:
            coro.close()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the engine loop and wait for its result (not from the engine thread: it would
        deadlock)."""
        if self.in_host_thread():
            coro.close()
            raise HostError("EngineHost.call() from the engine thread would deadlock; await the coroutine instead")
        return self.submit(coro).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    async def wrap(self, coro: Awaitable[T]) -> T:
        """Await ``coro`` on the engine loop from another running loop without blocking that loop."""
        return await asyncio.wrap_future(self.submit(_as_coroutine(coro)))


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw
