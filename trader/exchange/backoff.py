"""Exponential backoff with full jitter, and an async retry loop driven by the error classification."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from trader.exchange.errors import ExchangeError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffPolicy:
    attempts: int = 4  # first try + 3 retries (the seed asks for 3–5)
    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (1-based): uniform in [0, min(cap, base·2^(attempt−1))].

        Full jitter spreads retries of many clients apart; a fixed schedule would make them collide again.
        """
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: BackoffPolicy,
    *,
    name: str,
    may_retry: Callable[[ExchangeError], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``operation``; retry TEMPORARY errors up to the policy's attempts. Anything else is raised at once.

    ``may_retry`` can veto a retry (writes whose outcome is unknown must be reconciled, not repeated).
    A server-sent Retry-After is honoured when longer than the computed delay.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except ExchangeError as exc:
            if not exc.info.retryable or attempt >= policy.attempts or (may_retry and not may_retry(exc)):
                raise
            delay = max(policy.delay(attempt, rng), exc.info.retry_after_s or 0.0)
            log.warning("%s failed (%s); retry %d/%d in %.2fs", name, exc, attempt, policy.attempts - 1, delay)
            await sleep(delay)
