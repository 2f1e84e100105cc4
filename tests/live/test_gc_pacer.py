"""The garbage collector runs after a minute's work, not inside it (trader/live/gc_pacer.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from trader.live.gc_pacer import GcPacer


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_the_pacer_takes_the_collector_over_and_gives_it_back() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    pacer = GcPacer(lambda: True)
    pacer.start()
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0 and pacer.stats.frozen == gc.get_freeze_count()
    ref = cycle()
    assert ref() is not None  # nothing collects while the engine runs, until the pacer does
    pacer.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_someone_else_runs_is_left_alone() -> None:
    gc.disable()
    pacer = GcPacer(lambda: True)
    pacer.start()
    pacer.collect(1)
    pacer.stop()
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    assert pacer.stats.young == 1


async def test_a_minute_is_collected_once_the_engine_is_idle() -> None:
    busy = True
    pacer = GcPacer(lambda: not busy, settle_s=5.0, tick_s=0.01)
    stop = asyncio.Event()
    pacer.start()
    task = asyncio.create_task(pacer.run(stop))
    try:
        ref = cycle()
        pacer.minute_done()
        await asyncio.sleep(0.05)
        assert ref() is not None and pacer.stats.young == 0  # the order, its stop, the ledger: not yet
        busy = False
        await asyncio.sleep(0.05)
        assert ref() is None
        assert pacer.stats.young == 1 and pacer.stats.full == 0 and pacer.stats.backstop == 0
    finally:
        stop.set()
        await task
        pacer.stop()


async def test_a_full_collection_comes_every_full_every_s_and_skips_what_was_frozen() -> None:
    frozen = cycle()
    pacer = GcPacer(lambda: True, full_every_s=0.0, tick_s=0.01)
    stop = asyncio.Event()
    pacer.start()
    task = asyncio.create_task(pacer.run(stop))
    try:
        ref = cycle()
        pacer.minute_done()
        await asyncio.sleep(0.05)
        assert ref() is None and pacer.stats.full == 1
        assert frozen() is not None  # frozen at start: out of every collection until the stop
    finally:
        stop.set()
        await task
        pacer.stop()
    gc.collect()
    assert frozen() is None


async def test_without_quiet_minutes_the_backstop_collects() -> None:
    pacer = GcPacer(lambda: True, tick_s=0.01, backstop=2_000)
    stop = asyncio.Event()
    pacer.start()
    task = asyncio.create_task(pacer.run(stop))
    try:
        ref = cycle()
        await asyncio.sleep(0.05)
        assert ref() is not None and pacer.stats.backstop == 0  # few allocations: no collection
        kept = [[i] for i in range(5_000)]  # tracked objects past the backstop, no minute done
        await asyncio.sleep(0.05)
        assert ref() is None and pacer.stats.backstop >= 1
        del kept
    finally:
        stop.set()
        await task
        pacer.stop()
