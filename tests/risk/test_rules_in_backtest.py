"""Each risk rule in a backtest: a scenario that makes it act, and the same scenario where it does not.

The scenarios are hand-made candles with scripted signals (risk_helpers.Scripted: the reference strategy's sizing,
stops and risk book); the result's ``risk_counts`` says which rule acted and the trades show what it did.
"""

from __future__ import annotations

import numpy as np
import pytest
from risk_helpers import BTC, ETH, LONG, QUIET, SHORT, SOL, counts, frame, losing_longs, risk_share, run

from trader.risk.gate import MarketVerdict


def test_loss_streak_halves_the_size_until_a_win() -> None:
    closes, signals = losing_longs(5)
    on = run({BTC: frame(closes, signals)}, **QUIET)
    assert counts(on, "loss_streak") == {"shrunk": 2}  # the 4th and 5th entries, after 3 losses
    assert all(t.net_pnl < 0 for t in on.trades)
    off = run({BTC: frame(closes, signals)}, **{**QUIET, "loss_streak": 10})
    assert counts(off, "loss_streak") == {}
    # The first three trades are the same in both runs, so the 4th starts from the same wallet: half the size.
    assert [t.qty for t in on.trades[:3]] == [t.qty for t in off.trades[:3]]
    assert on.trades[3].qty == pytest.approx(0.5 * off.trades[3].qty, rel=0.01)


def test_a_win_ends_the_streak() -> None:
    closes, signals = losing_longs(3)
    # Then a long that rises 3 % (targets and a trailing stop: a win), then one more long.
    price = closes[-1]
    tail = list(closes)
    signals[len(tail) - 1] = LONG
    tail += list(price * np.linspace(1.0, 1.06, 40))
    tail += [tail[-1]] * 80
    signals[len(tail) - 1] = LONG
    tail += [tail[-1]] * 40
    result = run({BTC: frame(np.array(tail), signals)}, **QUIET)
    assert [t.net_pnl > 0 for t in result.trades[:4]] == [False, False, False, True]
    # The 4th entry came after three losses (halved); the 5th after the win: full size again.
    assert counts(result, "loss_streak") == {"shrunk": 1}
    n4, n5 = (t.qty * t.entry_price for t in result.trades[3:5])
    assert n5 / n4 == pytest.approx(2.0, rel=0.1)


def test_drawdown_beyond_max_lowers_the_total_budget() -> None:
    closes, signals = losing_longs(4)
    deep = run({BTC: frame(closes, signals)}, **{**QUIET, "loss_streak": 100, "max_drawdown": 0.03,
                                                  "drawdown_budget": 0.1})
    # After two 2 % losses the wallet is ~5 % below its peak: the budget is 10 % × 0.1 = 1 %, so entries shrink.
    assert counts(deep, "drawdown") == {"lowered": 2, "shrunk": 2}
    assert deep.trades[2].qty * deep.trades[2].entry_price < 0.55 * deep.trades[1].qty * deep.trades[1].entry_price
    shallow = run({BTC: frame(closes, signals)}, **{**QUIET, "loss_streak": 100, "max_drawdown": 0.5,
                                                     "drawdown_budget": 0.1})
    assert counts(shallow, "drawdown") == {}


def _calm_then_wild(signal_at: int) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    n = 360
    closes = np.full(n, 100.0)
    ranges = np.full(n, 0.001)
    ranges[300:] = 0.004  # the last hour: ranges four times wider
    return closes, ranges, {signal_at: LONG}


def test_volatility_spike_scales_the_size_at_the_same_leverage() -> None:
    closes, ranges, signals = _calm_then_wild(330)
    spike = run({BTC: frame(closes, signals, ranges=ranges)}, budget_trades_per_day=1e6)
    assert counts(spike, "volatility") == {"shrunk": 1}
    plain = run({BTC: frame(closes, signals, ranges=ranges)}, budget_trades_per_day=1e6, volatility_percentile=1.0)
    assert spike.trades[0].qty == pytest.approx(0.5 * plain.trades[0].qty, rel=0.01)
    assert spike.leverage == plain.leverage == 25
    calm = run({BTC: frame(*_calm_then_wild(250)[::2], ranges=_calm_then_wild(250)[1])}, budget_trades_per_day=1e6)
    assert counts(calm, "volatility") == {} and calm.trades


def test_account_tiers_lower_the_risk_share_above_10000() -> None:
    closes = np.full(120, 100.0)
    small = run({BTC: frame(closes, {60: LONG})}, wallet=10_000.0, **QUIET)
    large = run({BTC: frame(closes, {60: LONG})}, wallet=100_000.0, **QUIET)
    assert counts(small, "account_tier") == {}
    assert counts(large, "account_tier") == {"shrunk": 1}
    share_small = small.trades[0].qty / 10_000.0
    share_large = large.trades[0].qty / 100_000.0
    # 10k at 2 %, 40k at 1.5 %, 50k at 1 %: 1,300 USDT of 100,000 = 1.3 %.
    assert share_large / share_small == pytest.approx(1.3 / 2.0, rel=0.01)


def test_per_coin_risk_caps_the_loss_at_the_stop() -> None:
    closes = np.full(120, 100.0)
    capped = run({BTC: frame(closes, {60: LONG})}, **{**QUIET, "max_coin_risk": 0.01})
    free = run({BTC: frame(closes, {60: LONG})}, **QUIET)
    assert counts(capped, "coin_risk") == {"shrunk": 1} and counts(free, "coin_risk") == {}
    assert capped.trades[0].qty == pytest.approx(0.5 * free.trades[0].qty, rel=0.01)


def test_total_budget_shrinks_then_refuses() -> None:
    flat = np.full(120, 100.0)
    frames = {BTC: frame(flat, {60: LONG}), ETH: frame(flat * 20, {60: LONG}), SOL: frame(flat, {60: LONG})}
    tight = run(frames, **{**QUIET, "risk_per_trade": 0.05, "max_total_risk": 0.10})
    assert counts(tight, "total_risk") == {"blocked": 1}
    assert len(tight.trades) == 2
    loose = run(frames, **QUIET)
    assert counts(loose, "total_risk") == {} and len(loose.trades) == 3


def test_frequency_lowers_the_total_budget() -> None:
    closes = np.full(600, 100.0)
    signals = {i: LONG for i in range(40, 600, 6)}
    others_off = {"volatility_percentile": 1.0, "loss_streak": 10_000, "max_drawdown": 1.0}  # fees lose a little
    busy = run({BTC: frame(closes, signals)}, risk_per_trade=0.05, time_stop_bars=2, budget_trades_per_day=1.0,
               budget_floor=0.25, **others_off)
    assert counts(busy, "frequency").get("shrunk", 0) > 10
    # 0.25 × 10 % = 2.5 % budget against 5 % per trade: half the risk once the rate is known to be high.
    assert risk_share(busy, busy.trades[0]) == pytest.approx(0.05, rel=0.02)
    assert risk_share(busy, busy.trades[-1]) == pytest.approx(0.025, rel=0.02)
    calm = run({BTC: frame(closes, signals)}, risk_per_trade=0.05, time_stop_bars=2, budget_trades_per_day=1e6,
               **others_off)
    assert counts(calm, "frequency") == {}


def _walks(seed_b: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    steps = rng.normal(0, 0.002, 360)
    a = 100 * np.exp(np.cumsum(steps))
    other = steps if seed_b is None else np.random.default_rng(seed_b).normal(0, 0.002, 360)
    b = 2000 * np.exp(np.cumsum(other))
    # Then calm, so the first position is still open when the second signal comes.
    return np.concatenate([a, np.full(60, a[-1])]), np.concatenate([b, np.full(60, b[-1])])


def test_correlation_refuses_a_same_direction_entry_in_a_correlated_coin() -> None:
    a, b = _walks(None)  # ETH moves exactly as BTC
    same = run({BTC: frame(a, {370: LONG}), ETH: frame(b, {372: LONG})}, **QUIET)
    assert counts(same, "correlation") == {"blocked": 1}
    assert [t.pair for t in same.trades] == [BTC]
    opposite = run({BTC: frame(a, {370: LONG}), ETH: frame(b, {372: SHORT})}, **QUIET)
    assert counts(opposite, "correlation") == {} and {t.pair for t in opposite.trades} == {BTC, ETH}
    a2, b2 = _walks(11)  # independent moves
    apart = run({BTC: frame(a2, {370: LONG}), ETH: frame(b2, {372: LONG})}, **QUIET)
    assert counts(apart, "correlation") == {} and {t.pair for t in apart.trades} == {BTC, ETH}


def test_regime_budget_lowers_the_total_budget() -> None:
    closes = np.full(120, 100.0)
    table = (("ranging", 1.0), ("trending", 1.0), ("breakout", 0.75), ("volatile", 0.1), ("unknown", 1.0))
    wild = run({BTC: frame(closes, {60: LONG})}, **QUIET, regime_name="volatile", regime_budget=table)
    calm = run({BTC: frame(closes, {60: LONG})}, **QUIET, regime_name="ranging", regime_budget=table)
    assert counts(wild, "regime") == {"lowered": 1, "shrunk": 1} and counts(calm, "regime") == {}
    assert wild.trades[0].qty == pytest.approx(0.5 * calm.trades[0].qty, rel=0.01)  # 1 % budget vs 2 % wanted


def test_stake_amount_caps_the_margin_of_one_entry() -> None:
    closes = np.full(120, 100.0)
    capped = run({BTC: frame(closes, {60: LONG})}, **QUIET, stake_amount=10.0)
    free = run({BTC: frame(closes, {60: LONG})}, **QUIET)
    assert counts(capped, "stake_amount") == {"shrunk": 1} and counts(free, "stake_amount") == {}
    t = capped.trades[0]
    assert t.qty * t.entry_price / 25 <= 10.0 * 1.001 < free.trades[0].qty * free.trades[0].entry_price / 25


class _Gate:
    def __init__(self, verdict: MarketVerdict) -> None:
        self.verdict = verdict
        self.asked: list[tuple[str, int]] = []

    def entry(self, pair: str, at_ms: int) -> MarketVerdict:
        self.asked.append((pair, at_ms))
        return self.verdict


def test_the_market_gate_blocks_or_shrinks_entries() -> None:
    closes = np.full(120, 100.0)
    closed = _Gate(MarketVerdict(0.0, "maintenance", {"window": "test"}))
    blocked = run({BTC: frame(closes, {60: LONG})}, **QUIET, market_gate=closed)
    assert counts(blocked, "maintenance") == {"blocked": 1} and not blocked.trades and closed.asked
    thin = run({BTC: frame(closes, {60: LONG})}, **QUIET, market_gate=_Gate(MarketVerdict(0.5, "liquidity")))
    free = run({BTC: frame(closes, {60: LONG})}, **QUIET, market_gate=_Gate(MarketVerdict()))
    assert counts(thin, "liquidity") == {"shrunk": 1} and free.risk_counts == {}
    assert thin.trades[0].qty == pytest.approx(0.5 * free.trades[0].qty, rel=0.01)
