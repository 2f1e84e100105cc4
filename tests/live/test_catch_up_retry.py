"""A restart right after another can find the minute's request weight spent: the fills of an open trade could not be
read at start. They are read once the weight is back (after the stops went out), not left until someone checks."""

from __future__ import annotations

import asyncio

from trader.exchange.weights import Limit, RateLimited
from trader.live.account_sync import AccountSync

PAIR = "SOL/USDT:USDT"


class Desk(AccountSync):
    def __init__(self, refusals: int) -> None:
        self.catch_up_failed = {PAIR: 0.05}
        self.refusals = refusals
        self.read: list[str] = []

    async def _catch_up(self, pair: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise RateLimited("fetch_user_trades", 0.05, next(iter(Limit)))
        self.read.append(pair)


def test_fills_refused_at_start_are_read_once_the_weight_is_back() -> None:
    desk = Desk(refusals=2)
    left = asyncio.run(desk.retry_catch_up(max_wait_s=5.0))
    assert left == [] and desk.read == [PAIR] and desk.catch_up_failed == {}


def test_still_refused_after_the_limit_is_reported() -> None:
    desk = Desk(refusals=10_000)
    left = asyncio.run(desk.retry_catch_up(max_wait_s=0.3))
    assert left == [PAIR] and desk.read == [] and PAIR in desk.catch_up_failed
