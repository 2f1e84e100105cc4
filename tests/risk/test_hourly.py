"""The correlation rule's input (trader/risk/hourly.py): the rolling window of hourly closes, its return arrays and
the correlation, against a direct computation on plain dicts."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from trader.risk.book import HOUR_MS, RiskBook
from trader.risk.hourly import HourlyCloses, hourly_returns, returns_correlation
from trader.risk.limits import RiskLimits
from trader.risk.rules import correlation


def _direct(a: dict[int, float], b: dict[int, float], min_points: int) -> float:
    """The rule written out on dicts: returns between consecutive hours, common hours, np.corrcoef."""
    ra = {h: math.log(c / a[h - 1]) for h, c in a.items() if h - 1 in a}
    rb = {h: math.log(c / b[h - 1]) for h, c in b.items() if h - 1 in b}
    common = sorted(set(ra) & set(rb))
    if len(common) < min_points:
        return math.nan
    x, y = np.array([ra[h] for h in common]), np.array([rb[h] for h in common])
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def test_window_keeps_the_newest_hours_like_a_trimmed_dict() -> None:
    rng = random.Random(5)
    window, plain = HourlyCloses(25), {}
    for _ in range(3000):
        late = rng.random() < 0.1  # an hour out of order, or one already seen
        hour = rng.randint(0, 400) if late or not plain else max(plain) + rng.choice((0, 1, 1, 2))
        close = rng.uniform(1.0, 2.0)
        window.add(hour, close)
        plain[hour] = close
        if len(plain) > 25:
            del plain[min(plain)]
        assert window.items() == sorted(plain.items())
        hours, rets = window.returns()  # kept in step with the closes, equal to computing them afresh
        assert (hours.tolist(), rets.tolist()) == hourly_returns(*zip(*sorted(plain.items()), strict=True))
    with pytest.raises(ValueError, match="at least one"):
        HourlyCloses(0)


def test_returns_only_between_consecutive_hours_and_recomputed_after_a_close() -> None:
    window = HourlyCloses(10, [(1, 100.0), (2, 110.0), (4, 121.0), (5, 121.0)])
    hours, rets = window.returns()
    assert hours.tolist() == [2, 5] and rets.tolist() == [math.log(1.1), 0.0]
    version = window.version
    window.add(6, 242.0)
    assert window.version != version and window.returns()[0].tolist() == [2, 5, 6]
    assert hourly_returns([1], [1.0]) == ([], [])
    assert hourly_returns([1, 2, 3], [1.0, 0.0, 1.0]) == ([], [])  # no return across a non-positive close


def test_correlation_equals_the_rule_written_on_dicts() -> None:
    rng = random.Random(11)
    compared = 0
    for _ in range(400):
        a, b, pa, pb = {}, {}, 100.0, 50.0
        for h in range(rng.randint(0, 80)):
            shock = rng.gauss(0, 0.01)
            pa *= math.exp(shock)
            pb *= math.exp(rng.uniform(-1, 1) * shock + rng.gauss(0, 0.01))
            if rng.random() > 0.1:
                a[h] = pa
            if rng.random() > 0.1:
                b[h + rng.choice((0, 0, 1))] = pb
        if rng.random() < 0.05:
            b = dict.fromkeys(b, 5.0)  # flat: no correlation
        need = rng.choice((2, 12, 24))
        want, got = _direct(a, b, need), correlation(a, b, need)
        assert math.isnan(want) == math.isnan(got)
        if not math.isnan(want):
            compared += 1
            assert got == pytest.approx(want, abs=1e-12)
    assert compared > 100


def test_the_book_recomputes_a_correlation_only_after_a_new_close() -> None:
    book = RiskBook(RiskLimits(correlation_hours=24))
    btc, eth = "BTC/USDT:USDT", "ETH/USDT:USDT"
    for h in range(30):
        book.observe(btc, h * HOUR_MS, 100.0 * 1.01 ** ((-1) ** h * h))
        book.observe(eth, h * HOUR_MS, 50.0 * 1.01 ** ((-1) ** h * h))
    book.opened(eth, 1, 0.01)
    assert book.correlations(btc, 1)[eth] == pytest.approx(1.0)
    assert book.correlations(btc, -1) == {}
    book.observe(btc, 30 * HOUR_MS, 101.0)
    assert book.correlations(btc, 1)[eth] == pytest.approx(1.0)  # ETH's hour 30 not seen yet: not in common
    book.observe(eth, 30 * HOUR_MS, 1.0)  # a crash in one pair only: the value must move
    assert book.correlations(btc, 1)[eth] < 0.99
    assert returns_correlation(book.closes[btc].returns(), book.closes[eth].returns(), 12) == \
        book.correlations(btc, 1)[eth]
