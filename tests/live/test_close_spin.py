"""The engine loop polls around the predicted arrival of the next candles (trader/live/close_spin.py): the window
follows the arrivals' grid, stays within its caps, and the loop really does not sleep inside it."""

from __future__ import annotations

import asyncio

import pytest

from trader.live.close_spin import CloseSpinner


def _spinner(arrivals: list[float], **kw: float) -> CloseSpinner:
    spinner = CloseSpinner(asyncio.new_event_loop(), **kw)  # type: ignore[arg-type]
    spinner._arrivals.extend(arrivals)
    spinner.loop.close()
    return spinner


def test_the_window_opens_before_the_next_grid_point_and_lasts_past_the_latest_delay_seen() -> None:
    delays = [0.004, 0.001, 0.003, 0.002, 0.001, 0.005]
    window = _spinner([100 + 60 * k + d for k, d in enumerate(delays)]).window()
    assert window is not None
    opens, closes = window
    # The grid's phase is the earliest arrival (delay 0.001 after its minute): the next is due at 100 + 360.001.
    assert opens == pytest.approx(100 + 360 + 0.001 - 0.001, abs=1e-3)
    assert closes == pytest.approx(opens + 0.004 + 0.002, abs=1e-3)  # latest delay 4 ms past the earliest, margins


def test_a_missed_minute_is_two_periods_not_a_longer_one() -> None:
    arrivals = [0.0, 0.06, 0.12, 0.24, 0.30]  # 0.18 missing
    opens, _closes = _spinner(arrivals).window() or (None, None)
    assert opens == pytest.approx(0.36 - 0.001, abs=1e-6)


def test_no_window_before_four_arrivals_and_capped_windows_after() -> None:
    assert _spinner([0.0, 0.06, 0.12]).window() is None
    irregular = _spinner([0.0, 0.05, 0.13, 0.18, 0.24, 0.31])  # ±20 ms on a 60 ms pace
    opens, closes = irregular.window() or (0.0, 0.0)
    assert closes - opens <= 0.25 * 0.0625 + 1e-9  # a quarter of the period at most
    minutes = _spinner([60.0 * k + (0.2 if k % 2 else 0.0) for k in range(8)])  # the exchange: 60 s, 200 ms jitter
    opens, closes = minutes.window() or (0.0, 0.0)
    assert 0.2 <= closes - opens <= 0.25  # at most 250 ms of polling a minute


def test_the_loop_polls_inside_the_window_and_stops_at_the_arrival() -> None:
    async def run() -> tuple[CloseSpinner, int]:
        loop = asyncio.get_running_loop()
        spinner = CloseSpinner(loop)
        selects: list[float | None] = []
        select = loop._selector.select  # type: ignore[attr-defined]

        def counted(timeout: float | None = None):  # noqa: ANN202
            selects.append(timeout)
            return select(timeout)

        loop._selector.select = counted  # type: ignore[attr-defined]
        start = loop.time()
        for k in range(12):  # a candle every 20 ms, on a grid
            await asyncio.sleep(max(0.0, start + 0.02 * k - loop.time()))
            spinner.arrived()
        loop._selector.select = select  # type: ignore[attr-defined]
        spinner.stop()
        assert spinner._timer is None and spinner._planner is None and not spinner._polling
        return spinner, sum(1 for t in selects if t == 0)

    spinner, polls = asyncio.run(run())
    s = spinner.stats
    assert s.windows >= 6 and s.hits + s.misses == s.windows
    assert s.hits >= s.windows // 2  # asyncio.sleep's own lateness moves arrivals by ~1 ms at most here
    assert polls > 10 * s.windows  # select without sleeping, many times
    assert s.polled_s < 12 * 0.02 * 0.25 + 0.01  # within the caps: a quarter of each period


def test_the_next_window_is_planned_after_the_arrival_not_inside_it() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        spinner = CloseSpinner(loop)
        start = loop.time()
        for k in range(6):  # a candle every 40 ms: enough arrivals for a plan from the second on
            await asyncio.sleep(max(0.0, start + 0.04 * k - loop.time()))
            spinner.arrived()
            # The arrival only records: the minute's other candles come before any planning.
            assert spinner._timer is None and (spinner._planner is not None) == (k > 0)
            if k >= 3:
                await asyncio.sleep(spinner.plan_delay_s + 0.003)  # the longest the plan waits, and a little
                # The window is planned (it may already be open, if this arrival came late on a loaded machine).
                assert spinner._planner is None and (spinner._timer is not None or spinner._polling)
        spinner.stop()

    asyncio.run(run())
