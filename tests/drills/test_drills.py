"""Issue 11's standing drills at CI sizes (``bench/drills.py`` runs them at full size and prints the counts).

Each drill ends with the invariant check: 0 trades open when flat, 0 invented exit prices, 0 ledger mismatches
(PnL within one tick × size), 0 duplicate orders, 0 positions without an exchange-side stop 5 s after a restart,
the latency tier back to normal within its hold time after faults end."""

from __future__ import annotations

import pytest

from tests.drills.flatten import run_flatten
from tests.drills.fuzz import run_fuzz

pytestmark = pytest.mark.slow

ZERO_FUZZ = ("crashes", "mirror_mismatches", "double_counts", "ledger_fill_mismatches", "duplicate_fill_keys",
             "duplicate_orders", "desk_errors")
ZERO_FLATTEN = ("entry_errors", "round_crashes", "positions_without_stop_5s_after_entry", "flatten_not_flat",
                "flatten_ledger_not_ok", "exchange_positions_left", "positions_reported_left",
                "trades_open_when_flat", "invented_exit_prices", "exits_unknown", "duplicate_client_ids",
                "duplicate_entries", "extra_orders", "ledger_mismatches")


def _nonzero(counts: dict, keys: tuple[str, ...]) -> dict:
    return {k: counts.get(k, 0) for k in keys if counts.get(k, 0)}


async def test_fuzzed_user_data_updates_never_double_count(tmp_path) -> None:
    counts = await run_fuzz(2000, seed=11, workdir=tmp_path)
    assert counts["updates_fed"] >= 2000
    assert counts["duplicates"] > 100 and counts["stale_replays"] > 500 and counts["reordered"] > 100
    assert counts["stop_triggers"] and counts["take_profit_triggers"] and counts["foreign_orders"]
    assert not _nonzero(counts, ZERO_FUZZ), (counts["failures"], counts["desk_error_samples"])


@pytest.mark.parametrize("speed", [1.0, 60.0])
async def test_flatten_of_one_to_five_mixed_positions(tmp_path, speed) -> None:
    counts = await run_flatten(rounds=1, speed=speed, seed=int(speed), workdir=tmp_path)
    assert counts["runs"] == 5, counts.get("problems")
    assert counts["positions_opened"] == 15 and counts["positions_closed"] == 15, counts.get("problems")
    assert not _nonzero(counts, ZERO_FLATTEN), counts["problems"]


# -- kill -9 -------------------------------------------------------------------------------------------------------
ZERO_KILL = ("restart_failures", "check_missing", "positions_without_stop_5s_after_restart", "trades_open_when_flat",
             "invented_exit_prices", "duplicate_client_ids", "duplicate_entries", "clean_exit_failures")


@pytest.fixture(scope="module")
def kill_counts(tmp_path_factory) -> dict:
    from tests.drills.kill import run_kill
    return run_kill(kills=4, speed=60.0, seed=3, workdir=tmp_path_factory.mktemp("kill"))


def test_kill9_restart_protects_every_position_and_sends_nothing_twice(kill_counts) -> None:
    """After each kill (random, right after a confirm press, between fill and stop, during a flatten): the restart
    comes up, and 5 s later every exchange position has its STOP_MARKET; no order went out twice."""
    assert kill_counts["kills"] == 4 and kill_counts["restarts"] == 4
    assert not _nonzero(kill_counts, ZERO_KILL), kill_counts["problems"]


def test_kill9_restart_ledger_agrees_with_the_exchange(kill_counts) -> None:
    mismatches = {k: v for k, v in kill_counts.items() if k.startswith("mismatch_") and k != "mismatch_exit_unknown"}
    assert not mismatches and not kill_counts.get("ledger_checks_not_ok"), kill_counts["problems"]


def test_kill_between_fill_and_stop_after_an_earlier_trade_on_the_pair(tmp_path) -> None:
    """Found by the kill drill: the restart's catch-up once booked fills of earlier, closed trades on the pair into
    the trade killed between its fill and its stop."""
    from tests.drills.kill import run_reenter_repro
    check = run_reenter_repro(60.0, workdir=tmp_path)
    assert check["without_stop"] == 0  # the stop part holds
    assert check["ok"], check["summary"]


# -- fault matrix ----------------------------------------------------------------------------------------------------
ZERO_FAULTS = ("tier_not_normal_within_hold", "positions_without_stop", "trades_open_when_flat",
               "invented_exit_prices", "final_flatten_not_flat", "duplicate_client_ids", "duplicate_entries",
               "flattens_not_flat")


async def test_fault_matrix_then_tiers_normal_and_ledger_whole(tmp_path) -> None:
    from tests.drills.faults import run_faults
    counts = await run_faults(hours=0.4, speed=60.0, seed=5, hold_s=10, workdir=tmp_path)
    assert counts["latency_spikes"] >= 1
    assert not _nonzero(counts, ZERO_FAULTS), counts["problems"]
    mismatches = {k: v for k, v in counts.items() if "mismatch_" in k and not k.endswith("exit_unknown")}
    assert not mismatches, counts["problems"]
