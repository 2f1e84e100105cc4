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
    assert counts["runs"] == 5 and counts["positions_opened"] == 15 and counts["positions_closed"] == 15
    assert not _nonzero(counts, ZERO_FLATTEN), counts["problems"]
