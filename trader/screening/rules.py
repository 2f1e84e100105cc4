"""Plain-float twins of the money rules the screening kernel needs inside its bar loop.

numba cannot call the Python rules in ``trader.model.money``, ``trader.model.instruments`` and
``trader.backtest.slippage`` from compiled code, so the few the kernel runs per bar or per fill are restated here
on plain floats and arrays. They are *copies by necessity*, not a second definition: tests/screening/test_rules.py
holds each one equal to its Python original on the same inputs (random accounts, brackets, prices), so a change to a
rule that is not mirrored here fails that test. Sizing and order decisions are not here at all: the screening twins
call ``trader.strategy.sizing`` and ``trader.strategy.base`` themselves (see trader/screening/reference.py).

Brackets are a float array with one row per tier: floor, cap, mmr, cum, max_leverage.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trader.model.instruments import Bracket

B_FLOOR, B_CAP, B_MMR, B_CUM, B_LEV = 0, 1, 2, 3, 4


def bracket_array(brackets: tuple[Bracket, ...]) -> np.ndarray:
    """``InstrumentSpec.brackets`` as the kernel's float rows."""
    out = np.empty((len(brackets), 5))
    for k, b in enumerate(brackets):
        out[k] = (b.floor, b.cap, b.mmr, b.cum, float(b.max_leverage))
    return out


def decimals(step: float) -> int:
    """``trader.model.instruments._decimals``: digits after the point of a step or tick size."""
    return max(0, -int(math.floor(math.log10(step) + 1e-12)))


@njit(cache=True)
def commission(price: float, qty: float, rate: float) -> float:  # money.commission / FeeSchedule.fee
    return abs(qty) * price * rate


@njit(cache=True)
def initial_margin(qty: float, price: float, leverage: float) -> float:  # money.initial_margin
    return abs(qty) * price / leverage


@njit(cache=True)
def realized_pnl(closed_qty: float, entry: float, exit_price: float, side: float) -> float:  # money.realized_pnl
    return abs(closed_qty) * (exit_price - entry) * side


@njit(cache=True)
def funding_cashflow(signed_qty: float, mark: float, rate: float) -> float:  # money.funding_cashflow
    return -signed_qty * mark * rate


@njit(cache=True)
def slippage(price: float, is_buy: bool, bar_range: float, bps: float, range_share: float) -> float:
    """SlippageModel.apply."""
    off = price * bps * 1e-4 + range_share * bar_range
    return price + off if is_buy else price - off


@njit(cache=True)
def bracket_index(notional: float, br: np.ndarray) -> int:  # money.bracket_for (as a row index)
    n = abs(notional)
    for k in range(br.shape[0]):
        if n < br[k, B_CAP]:
            return k
    return br.shape[0] - 1


@njit(cache=True)
def maintenance_margin(notional: float, br: np.ndarray) -> float:  # money.maintenance_margin
    k = bracket_index(notional, br)
    return abs(notional) * br[k, B_MMR] - br[k, B_CUM]


@njit(cache=True)
def liquidation_fee(notional: float, rate: float, maint_margin: float, margin_left: float) -> float:
    return max(0.0, min(abs(notional) * rate, maint_margin, margin_left))  # money.liquidation_fee


@njit(cache=True)
def liquidation_price(side: float, qty: float, entry: float, wallet: float, br: np.ndarray, other_mm: float,
                      other_upnl: float, ref_price: float) -> float:
    """money.liquidation_price; NaN where the Python rule returns None."""
    b = bracket_index(qty * ref_price, br)
    lp = 0.0
    for _ in range(br.shape[0] + 1):
        denom = qty * br[b, B_MMR] - side * qty
        if denom == 0:
            return math.nan
        lp = (wallet - other_mm + other_upnl + br[b, B_CUM] - side * qty * entry) / denom
        if lp <= 0:
            return math.nan
        nb = bracket_index(qty * lp, br)
        if nb == b:
            break
        b = nb
    return lp


@njit(cache=True)
def round_half_even(x: float) -> float:
    """Python's ``round(x)`` (banker's rounding) as a float."""
    return np.rint(x)


@njit(cache=True)
def round_to(x: float, ndigits: int) -> float:
    """Python's ``round(x, ndigits)`` for the magnitudes prices and sizes have. numpy rounds x·10ⁿ, CPython rounds
    the exact binary value; the two differ only on values within an ulp of a half, which a tick- or step-multiple
    never is (the tests compare them over the shipped data's prices and random sizes)."""
    return np.round(x, ndigits)


@njit(cache=True)
def round_price(price: float, tick: float, tick_decimals: int) -> float:  # InstrumentSpec.round_price
    return round_to(round_half_even(price / tick) * tick, tick_decimals)


@njit(cache=True)
def snap_position(size: float, step: float) -> float:
    """FuturesBroker._snap: a position is a whole number of steps (float residues such as 1e-18 removed)."""
    steps = round_half_even(size / step)
    if steps == 0:
        return 0.0
    return round_to(steps * step, 12)
