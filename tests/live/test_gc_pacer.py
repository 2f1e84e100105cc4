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
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.enable()
    gc.set_threshold(*before)


async def _running(pacer: GcPacer) -> asyncio.Task[None]:
    return asyncio.create_task(pacer.run(asyncio.Event()))


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()  # as the store does at its stop
    await asyncio.gather(task, return_exceptions=True)


def test_the_pacer_takes_the_collector_over_and_gives_it_back() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    pacer = GcPacer(lambda: True, young_threshold=12_345)
    pacer.start()
    assert pacer.stats.young == 1  # the young generations first, then the freeze
    assert gc.get_freeze_count() > 0 and pacer.stats.frozen == gc.get_freeze_count()
    assert gc.get_threshold() == (12_345, 1_000, 1_000) and gc.isenabled()
    pacer.start()  # once only
    assert pacer.stats.young == 1
    pacer.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_collector_someone_else_runs_is_left_alone() -> None:
    gc.disable()
    pacer = GcPacer(lambda: True)
    pacer.start()
    pacer.collect(1)
    pacer.stop()
    assert not gc.isenabled() and gc.get_freeze_count() == 0 and gc.get_threshold()[0] != 10_000
    assert pacer.stats.young == 1


def test_a_second_pacer_leaves_the_first_ones_settings_alone() -> None:
    first, second = GcPacer(lambda: True, young_threshold=20_000), GcPacer(lambda: True, young_threshold=30_000)
    first.start()
    frozen = gc.get_freeze_count()
    second.start()
    assert gc.get_threshold()[0] == 20_000 and gc.get_freeze_count() == frozen
    second.stop()
    assert gc.get_threshold()[0] == 20_000 and gc.get_freeze_count() == frozen
    first.stop()
    assert gc.get_freeze_count() == 0


async def test_python_collects_until_the_engine_is_first_idle() -> None:
    busy = True
    before = gc.get_threshold()
    pacer = GcPacer(lambda: not busy)
    task = await _running(pacer)
    try:
        await asyncio.sleep(0.12)
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0  # the history is still being consumed
        busy = False
        await asyncio.sleep(0.12)
        assert gc.get_threshold()[0] == 10_000 and gc.get_freeze_count() > 0 and pacer.stats.young == 1
    finally:
        await _stopped(task)
        pacer.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_minute_is_collected_once_the_engine_is_idle() -> None:
    busy = False
    pacer = GcPacer(lambda: not busy, settle_s=5.0)
    pacer.start()
    busy = True
    task = await _running(pacer)
    try:
        ref = cycle()
        pacer.minute_done()
        await asyncio.sleep(0.05)
        assert ref() is not None and pacer.stats.young == 1  # the order, its stop, the ledger: not yet
        busy = False
        await asyncio.sleep(0.05)
        assert ref() is None
        assert pacer.stats.young == 2 and pacer.stats.full == 0 and pacer.stats.automatic == 0
    finally:
        await _stopped(task)
        pacer.stop()


async def test_a_full_collection_comes_every_full_every_s_and_skips_what_was_frozen() -> None:
    kept = Node()
    frozen = weakref.ref(kept)
    pacer = GcPacer(lambda: True, full_every_s=0.0)
    pacer.start()
    del kept  # garbage now, but frozen while alive: no collection looks at it until the stop
    task = await _running(pacer)
    try:
        ref = cycle()
        pacer.minute_done()
        await asyncio.sleep(0.05)
        assert ref() is None and pacer.stats.full == 1
        assert frozen() is not None
    finally:
        await _stopped(task)
        pacer.stop()
    gc.collect()
    assert frozen() is None


def test_without_quiet_minutes_python_collects_past_the_raised_threshold() -> None:
    pacer = GcPacer(lambda: True, young_threshold=2_000)
    pacer.start()
    try:
        ref = cycle()
        few = [[i] for i in range(500)]
        assert ref() is not None and pacer.stats.automatic == 0  # below the threshold: nothing collects
        many = [[i] for i in range(5_000)]  # past it, no minute done
        assert ref() is None and pacer.stats.automatic >= 1
        assert pacer.stats.longest_automatic_ms > 0
        del few, many
    finally:
        pacer.stop()
