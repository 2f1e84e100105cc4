"""Telegram's flood limits as token buckets (about one message a second per chat, twenty a minute per group,
thirty a second overall), answering 429 with retry_after when a bucket is empty. Off unless a policy is given, so
ordinary tests never see it; with a policy the bot's own rate limiter can be tested against it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.emulator.errors import too_many_requests

# Methods that put or change a message in a chat; these are what Telegram's limits count.
LIMITED_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "editmessagetext", "editmessagereplymarkup", "editmessagecaption",
    "copymessage", "forwardmessage", "sendmediagroup",
})


@dataclass(frozen=True)
class FloodPolicy:
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    group_per_minute: float = 20.0
    global_per_second: float = 30.0


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self) -> float:
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class FloodControl:
    policy: FloodPolicy
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, int], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _bucket(self, key: tuple[str, int], capacity: float, rate: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        bucket.refill(now)
        return bucket

    def admit(self, chat_id: int, is_group: bool) -> None:
        """Take one token from every bucket that applies, or raise 429 without taking any."""
        policy = self.policy
        with self._lock:
            now = self.clock()
            buckets = [
                self._bucket(("chat", chat_id), policy.per_chat_burst, policy.per_chat_per_second, now),
                self._bucket(("all", 0), policy.global_per_second, policy.global_per_second, now),
            ]
            if is_group:
                buckets.append(self._bucket(("group", chat_id), policy.group_per_minute,
                                            policy.group_per_minute / 60.0, now))
            wait = max(bucket.wait() for bucket in buckets)
            if wait > 0:
                raise too_many_requests(max(1, math.ceil(wait)))
            for bucket in buckets:
                bucket.tokens -= 1
