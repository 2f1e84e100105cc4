"""The service's one error type: a code front ends can translate, a reason with its parameters they can say in the
user's language, and a plain English message for logs, the CLI and the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CODES = frozenset({
    "invalid_argument",  # the request itself is malformed (unknown pair, leverage out of bounds)
    "refused",  # valid, but the current state forbids it (would breach the liquidation buffer)
    "conflict",  # already in that state, or another action of the kind is running
    "not_running",  # needs the engine running
    "exchange",  # the exchange failed or refused
    "permission",  # the exchange key cannot do this
})

# Every refusal's reason → the parameters it is said with. A front end translates ``reason.<name>`` with these
# fields (locales/*.json); tests/service/test_refusal_reasons.py holds every raise site and both catalogs to it.
# Parameter conventions front ends rely on: ``pair`` is one pair, ``pairs`` a list of pairs, ``choices`` a list of
# words, ``items`` a list of (reason, params) (several problems at once); anything else is shown as it is.
REASONS: dict[str, tuple[str, ...]] = {
    # engine state
    "engine_not_configured": (),
    "engine_stopped": (),
    "already_running": (),
    "already_paused": (),
    "not_paused": (),
    "strategy_busy": ("seconds",),
    "strategy_cannot_start": ("strategy",),
    # pairs and the whitelist
    "bad_pair": ("text",),
    "markets_not_loaded": (),
    "pair_not_traded": ("pairs",),
    "already_whitelisted": ("pairs",),
    "not_whitelisted": ("pairs",),
    "positions_open": ("pairs",),
    "whitelist_empty": (),
    "pair_not_in_engine": ("pair",),
    # leverage
    "several": ("items",),
    "leverage_range": ("maximum",),
    "leverage_pair_cap": ("pair", "maximum"),
    "leverage_position_cap": ("pair", "notional", "maximum"),
    "leverage_stop_too_far": ("pair", "side", "distance", "leverage", "cap"),
    # forced entries and exits
    "bad_side": ("side",),
    "position_open": ("pair", "side", "contracts"),
    "no_open_trade": ("target",),
    "risk_rule": ("pair",),
    "entry_refused": ("pair", "why"),
    "no_price_yet": ("pair",),
    "entries_paused": ("pair",),
    "entries_blocked": ("pair", "why"),
    "latency_blocks_entries": ("pair",),
    "wallet_unknown": ("pair",),
    "below_min_order": ("pair", "risk", "wallet", "distance", "min_notional", "step", "available"),
    "entry_rejected": ("pair", "why"),
    "entry_not_placed": ("pair", "why"),
    "entry_unconfirmed": ("pair", "seconds"),
    "exit_use_flatten": ("pair",),
    "no_engine_position": ("pair",),
    "exit_not_executed": ("pair", "why"),
    "exit_unconfirmed": ("pair", "seconds"),
    # strategy and its parameters
    "admin_only_params": (),
    "no_params": (),
    "bad_params": ("strategy", "names"),
    "unknown_strategy": ("name", "choices"),
    "strategy_timeframe": ("strategy", "timeframe"),
    "too_few_trades": ("needed",),
    # reads
    "days_range": ("low", "high", "days"),
    # backtests, hyperopt, training
    "bad_timeframe": ("timeframe", "choices"),
    "bad_pairs": ("texts",),
    "bad_timerange": ("text",),
    "pair_count": ("maximum",),
    "range_needs_start": (),
    "range_needs_both": (),
    "missing_data": ("pairs", "timerange"),
    "job_not_running": ("id",),
    "job_not_yours": ("id",),
    "job_finished": ("id",),
    "job_running": ("id",),
    "machine_busy": (),
    "epochs_range": ("maximum", "value"),
    "folds_range": ("maximum", "value"),
    "bad_loss": ("loss", "choices"),
    "bad_spaces": ("spaces",),
    "folds_do_not_fit": ("folds",),
    "range_too_short": ("bars", "warmup"),
    "admin_only_hyperopt": (),
    "admin_only_train": (),
    "bad_model": ("model", "choices"),
    "net_days": ("model", "maximum", "days"),
    # the exchange said no (its own words, as it sent them)
    "exchange_error": ("detail",),
}


class ServiceError(Exception):
    """``reason`` names why (a key of REASONS), ``params`` are its fields; ``details`` carry structured extras
    some front ends use (a risk rule's numbers, the missing data's download command, the running job)."""

    def __init__(self, code: str, message: str, *, reason: str, params: Mapping[str, Any] | None = None,
                 **details: Any):
        if code not in CODES:
            raise ValueError(f"unknown service error code {code!r}")
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        given = dict(params or {})
        if set(given) != set(REASONS[reason]):
            raise ValueError(f"refusal reason {reason!r} takes {REASONS[reason]}, got {sorted(given)}")
        self.code = code
        self.message = message
        self.reason = reason
        self.params = given
        self.details = details
        super().__init__(f"{code}: {message}")
