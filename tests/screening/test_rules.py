"""The kernel's plain-float money rules equal the project's Python rules on the same inputs (trader/screening/rules.py
restates them only because compiled code cannot call Python)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from trader.backtest.slippage import SlippageModel
from trader.model import money
from trader.model.instruments import FeeSchedule
from trader.model.rules import resolve_rules
from trader.screening import rules as nb

SPECS = resolve_rules(["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]).specs


@pytest.mark.parametrize("pair", sorted(SPECS))
def test_liquidation_and_maintenance_equal(pair: str) -> None:
    spec = SPECS[pair]
    br = nb.bracket_array(spec.brackets)
    rng = random.Random(7)
    for _ in range(3000):
        side = rng.choice((1, -1))
        entry = rng.uniform(0.5, 2.0) * (100_000 if "BTC" in pair else 3000 if "ETH" in pair else 150)
        qty = spec.round_qty_down(rng.uniform(10, 3_000_000) / entry) or spec.step_size
        wallet = rng.uniform(10, 200_000)
        ref = entry * rng.uniform(0.9, 1.1)
        want = money.liquidation_price(side, qty, entry, wallet, spec.brackets, ref_price=ref)
        got = nb.liquidation_price(float(side), qty, entry, wallet, br, 0.0, 0.0, ref)
        assert (want is None and math.isnan(got)) or want == got
        notional = qty * ref
        assert nb.maintenance_margin(notional, br) == money.maintenance_margin(notional, spec.brackets)
        mm = money.maintenance_margin(notional, spec.brackets)
        left = rng.uniform(-100, 1000)
        assert nb.liquidation_fee(notional, spec.liquidation_fee, mm, left) == money.liquidation_fee(
            notional, spec.liquidation_fee, mm, left)


def test_fill_arithmetic_equal() -> None:
    rng = random.Random(3)
    fees = FeeSchedule()
    for _ in range(5000):
        price, qty, lev = rng.uniform(0.01, 150_000), rng.uniform(-50, 50), rng.choice((1, 5, 20, 25, 50, 125))
        maker = rng.random() < 0.5
        assert nb.commission(price, qty, fees.maker if maker else fees.taker) == fees.fee(price, qty, maker)
        assert nb.initial_margin(qty, price, float(lev)) == money.initial_margin(qty, price, lev)
        entry, side = rng.uniform(0.01, 150_000), rng.choice((1, -1))
        assert nb.realized_pnl(qty, entry, price, float(side)) == money.realized_pnl(qty, entry, price, side)
        rate = rng.uniform(-0.003, 0.003)
        assert nb.funding_cashflow(qty, price, rate) == money.funding_cashflow(qty, price, rate)
        model = SlippageModel(bps=rng.uniform(0, 5), range_share=rng.uniform(0, 0.1))
        buy, rng_ = rng.random() < 0.5, rng.uniform(0, 100)
        assert nb.slippage(price, buy, rng_, model.bps, model.range_share) == model.apply(price, buy, rng_)


@pytest.mark.parametrize("pair", sorted(SPECS))
def test_rounding_equal_on_shipped_prices(pair: str) -> None:
    """round_price on every trailing-stop candidate the reference strategy could compute on the shipped candles,
    and position snapping on random stepped sums."""
    from trader.backtest.data_prep import load_pair_candles
    from trader.data.store import bundled_data_dir

    spec = SPECS[pair]
    df = load_pair_candles(bundled_data_dir(), pair, "1m", None, None)
    close = df["close"].to_numpy()[:20_000]
    rng = np.random.default_rng(1)
    cands = np.concatenate([close, close - rng.uniform(0, 0.02, len(close)) * close,
                            close * (1 + rng.uniform(-0.001, 0.001, len(close)))])
    dec = nb.decimals(spec.tick_size)
    for px in cands:
        assert nb.round_price(float(px), spec.tick_size, dec) == spec.round_price(float(px))
    step = spec.step_size
    for _ in range(5000):
        parts = [spec.round_qty_down(float(x)) for x in rng.uniform(0, 50 * step * 100, 3)]
        size = parts[0] - parts[1] + parts[2] * rng.choice((1, -1))
        steps = round(size / step)
        want = 0.0 if not steps else round(steps * step, 12)
        assert nb.snap_position(size, step) == want
