"""``RiskBook``: what the risk rules remember during one run of a strategy (a backtest segment, or a live engine
from start to stop), and the counts and recent decisions a backtest result and /risk report.

A strategy makes one in ``start()`` and tells it about every bar (``observe``: the hourly closes the correlation
rule reads, and the clock), every entry (``opened``) and every closed position (``closed``: the loss streak, the
wallet's peak). ``decide`` runs ``rules.decide_entry``; every rule that acted is counted, and the ones that block
or shrink an entry go to the sink (live: an event on the bus — at most one per rule, pair and effect per
``quiet_ms`` of bar time, so a signal refused on every bar does not ring a phone every bar).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trader.risk.gate import ALLOW, MarketGate
from trader.risk.hourly import HourlyCloses, returns_correlation
from trader.risk.limits import RiskLimits
from trader.risk.rules import (
    EntryDecision,
    EntryInputs,
    OpenRisk,
    RuleHit,
    decide_entry,
    drawdown,
    frequency_factor,
    slots_hit,
    streak_factor,
)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
FREQUENCY_DAYS = 7  # entries per day are counted over this many trailing days (or the run so far, ≥ 1 day)
QUIET_MS = HOUR_MS
RECENT = 20  # decisions kept for /risk


@dataclass(frozen=True)
class Decision:
    """A rule that acted on an entry, as the sink and /risk see it."""

    at_ms: int
    pair: str
    side: int
    hit: RuleHit


Sink = Callable[[Decision], None]


@dataclass(frozen=True)
class RiskHistory:
    """What a live restart must not forget, read from the ledger: each closed trade of the lookback as (close time,
    price P&L, net P&L) in closing order, and the entry times of the frequency window."""

    closed: tuple[tuple[int, float, float], ...] = ()
    entries_ms: tuple[int, ...] = ()


def coin_of(pair: str) -> str:
    return pair.split("/", 1)[0]


class RiskBook:
    def __init__(self, limits: RiskLimits, sink: Sink | None = None, gate: MarketGate | None = None,
                 quiet_ms: int = QUIET_MS) -> None:
        self.limits = limits
        self.sink = sink
        self.gate = gate
        self.quiet_ms = quiet_ms
        self.open: dict[str, OpenRisk] = {}
        self.losses_in_a_row = 0
        self.peak_wallet = 0.0
        self.wallet = 0.0
        self.now_ms = 0
        self.first_ms: int | None = None
        self.entries_ms: deque[int] = deque()
        self.closes: dict[str, HourlyCloses] = {}  # the window and one more close for its first return
        self._rho: dict[tuple[str, str], tuple[int, int, float]] = {}  # (pair, other) -> both windows' versions, ρ
        self.counts: dict[str, dict[str, int]] = {}
        self.recent: deque[Decision] = deque(maxlen=RECENT)
        self._last_sent: dict[tuple[str, str, str], int] = {}
        self.vol_rank: dict[str, float] = {}
        self._entry_at: dict[str, int] = {}

    # -- what the strategy tells it ---------------------------------------------------------------------------
    def observe(self, pair: str, close_ms: int, close: float) -> None:
        """One feed bar closed at ``close_ms``: the clock, and the hourly close at each full hour."""
        if close_ms > self.now_ms:
            self.now_ms = close_ms
        if self.first_ms is None:
            self.first_ms = close_ms
        if close_ms % HOUR_MS == 0 and close > 0:
            hours = self.closes.get(pair)
            if hours is None:
                hours = self.closes[pair] = HourlyCloses(self.limits.correlation_hours + 1)
            hours.add(close_ms // HOUR_MS, close)

    def see_wallet(self, wallet: float) -> None:
        self.wallet = wallet
        if wallet > self.peak_wallet:
            self.peak_wallet = wallet

    def opened(self, pair: str, side: int, risk: float, at_ms: int | None = None) -> None:
        """An entry was sent with ``risk`` (share of the wallet at its stop); a second one on a pair (a forced entry
        beside the strategy's) adds to it."""
        before = self.open.get(pair)
        total = risk + (before.risk if before is not None and before.side == side else 0.0)
        self.open[pair] = OpenRisk(pair, coin_of(pair), side, total)
        at = self.now_ms if at_ms is None else at_ms
        self.entries_ms.append(at)
        self._entry_at[pair] = at

    def adopt(self, pair: str, side: int) -> None:
        """A position open before this run (a restart): its stop is not known here, so it counts as one full
        ``risk_per_trade`` against the budgets (not as an entry of this run)."""
        self.open[pair] = OpenRisk(pair, coin_of(pair), side, self.limits.risk_per_trade)

    def cancelled(self, pair: str) -> None:
        """An entry that never filled (rejected, cancelled): its risk is not open and it was no trade."""
        self.open.pop(pair, None)
        at = self._entry_at.pop(pair, None)
        if at is not None and at in self.entries_ms:
            self.entries_ms.remove(at)

    def closed(self, pair: str, pnl: float, wallet: float) -> None:
        """A position went flat with ``pnl`` (its price P&L): a loss extends the streak, a win ends it."""
        self.open.pop(pair, None)
        if pnl < 0:
            self.losses_in_a_row += 1
        elif pnl > 0:
            self.losses_in_a_row = 0
        self.see_wallet(wallet)

    def restore(self, history: RiskHistory, wallet: float) -> None:
        """Carry the loss streak, the wallet's peak and the trade rate over a restart (a user restarting after
        three losses must not get full size back). The peak is rebuilt backwards from today's ``wallet`` with each
        closed trade's net P&L (deposits and withdrawals in between are not seen)."""
        for _, pnl, _ in history.closed:
            if pnl < 0:
                self.losses_in_a_row += 1
            elif pnl > 0:
                self.losses_in_a_row = 0
        level = peak = wallet
        for _, _, net in reversed(history.closed):
            level -= net
            peak = max(peak, level)
        self.see_wallet(wallet)
        self.peak_wallet = max(self.peak_wallet, peak)
        for at in sorted(history.entries_ms):
            self.entries_ms.append(at)
        if history.entries_ms:
            first = min(history.entries_ms)
            self.first_ms = first if self.first_ms is None else min(self.first_ms, first)

    # -- the decision -----------------------------------------------------------------------------------------
    def trades_per_day(self) -> float:
        horizon = self.now_ms - FREQUENCY_DAYS * DAY_MS
        while self.entries_ms and self.entries_ms[0] < horizon:
            self.entries_ms.popleft()
        span = min(FREQUENCY_DAYS * DAY_MS, self.now_ms - (self.first_ms or self.now_ms))
        return len(self.entries_ms) / (max(span, DAY_MS) / DAY_MS)

    def correlations(self, pair: str, side: int) -> dict[str, float]:
        """Correlation of ``pair``'s hourly returns with each open position's on the same side. A pair's value is
        kept until either window takes a new close (entry decisions come every bar, closes once an hour)."""
        return {p.pair: self._correlation(pair, p.pair) for p in self.open.values()
                if p.side == side and p.pair != pair}

    def _correlation(self, pair: str, other: str) -> float:
        mine, theirs = self.closes.get(pair), self.closes.get(other)
        if mine is None or theirs is None:
            return math.nan
        kept = self._rho.get((pair, other))
        if kept is not None and kept[0] == mine.version and kept[1] == theirs.version:
            return kept[2]
        need = max(12, self.limits.correlation_hours // 3)
        rho = returns_correlation(mine.returns(), theirs.returns(), need)
        self._rho[(pair, other)] = (mine.version, theirs.version, rho)
        return rho

    def slot_free(self, pair: str, side: int) -> bool:
        """False (and the block recorded) when max_open_trades positions are open: a cheap check a strategy makes
        before grading a signal."""
        hit = slots_hit(len(self.open), self.limits)
        if hit is not None:
            self.record(pair, side, hit)
        return hit is None

    def decide(self, pair: str, side: int, base_risk: float, wallet: float, vol_rank: float = math.nan,
               regime: str = "unknown") -> EntryDecision:
        self.see_wallet(wallet)
        self.vol_rank[pair] = vol_rank
        verdict = self.gate.entry(pair, self.now_ms) if self.gate is not None else ALLOW
        x = EntryInputs(pair=pair, coin=coin_of(pair), side=side, base_risk=base_risk, wallet=wallet,
                        peak_wallet=self.peak_wallet, losses_in_a_row=self.losses_in_a_row,
                        trades_per_day=self.trades_per_day(), vol_rank=vol_rank, regime=regime,
                        open_positions=tuple(self.open.values()), correlations=self.correlations(pair, side),
                        market_factor=verdict.factor, market_rule=verdict.rule, market_values=verdict.values)
        decision = decide_entry(x, self.limits)
        for hit in decision.hits:
            self.record(pair, side, hit)
        return decision

    def record(self, pair: str, side: int, hit: RuleHit) -> None:
        """Count a rule that acted; send the ones that block or shrink an entry (not repeated within quiet_ms)."""
        per = self.counts.setdefault(hit.rule, {})
        per[hit.effect] = per.get(hit.effect, 0) + 1
        if hit.effect == "lowered":
            return
        d = Decision(self.now_ms, pair, side, hit)
        self.recent.append(d)
        key = (hit.rule, hit.effect, pair)
        last = self._last_sent.get(key)
        if self.sink is not None and (last is None or self.now_ms - last >= self.quiet_ms):
            self._last_sent[key] = self.now_ms
            self.sink(d)

    # -- display ----------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Each rule's state now (for /risk): plain numbers, safe to deep-copy across threads."""
        lim = self.limits
        tpd = self.trades_per_day()
        dd = drawdown(self.peak_wallet, self.wallet)
        budget = lim.max_total_risk * frequency_factor(tpd, lim) * (lim.drawdown_budget if dd > lim.max_drawdown
                                                                    else 1.0)
        blocks = self.counts.get("correlation", {}).get("blocked", 0)
        coins: dict[str, float] = {}
        for p in self.open.values():
            coins[p.coin] = coins.get(p.coin, 0.0) + p.risk
        return {
            "open": [{"pair": p.pair, "side": p.side, "risk": p.risk} for p in self.open.values()],
            "used": sum(p.risk for p in self.open.values()),
            "budget": budget,
            "max_total_risk": lim.max_total_risk,
            "coins": coins,
            "max_coin_risk": lim.max_coin_risk,
            "open_trades": len(self.open),
            "max_open_trades": lim.max_open_trades,
            "trades_per_day": tpd,
            "frequency_limit": lim.budget_trades_per_day,
            "losses_in_a_row": self.losses_in_a_row,
            "loss_streak": lim.loss_streak,
            "streak_factor": streak_factor(self.losses_in_a_row, lim),
            "wallet": self.wallet,
            "peak_wallet": self.peak_wallet,
            "drawdown": dd,
            "max_drawdown": lim.max_drawdown,
            "vol_rank": {k: v for k, v in self.vol_rank.items() if math.isfinite(v)},
            "volatility_percentile": lim.volatility_percentile,
            "correlation_blocks": blocks,
            "correlation_max": lim.correlation_max,
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "recent": [{"at_ms": d.at_ms, "pair": d.pair, "side": d.side, "rule": d.hit.rule,
                        "effect": d.hit.effect, "values": dict(d.hit.values)} for d in self.recent],
        }
