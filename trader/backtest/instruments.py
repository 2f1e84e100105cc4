"""Exchange rules for the simulated contracts: lot and tick sizes, minimum notional, liquidation fee, brackets.

These are snapshots (binance-futures.md §1.4, §3.2, §7); Binance changes them, and a live run must read
``exchangeInfo`` and ``leverageBracket`` instead. Anything not known for a symbol falls back to BTCUSDT's numbers,
which the result records as an assumption rather than hiding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin tier: notional in [floor, cap) uses ``mmr`` and maintenance amount ``cum``."""

    floor: float
    cap: float
    mmr: float
    cum: float
    max_leverage: int


def brackets_from_table(rows: list[tuple[float, float, float, int]]) -> tuple[Bracket, ...]:
    """Build brackets from (floor, cap, mmr, max_leverage) rows, deriving ``cum`` as Binance does.

    ``cum_n = floor_n × (mmr_n − mmr_{n−1}) + cum_{n−1}`` keeps the maintenance margin continuous at each floor.
    """
    out: list[Bracket] = []
    cum = 0.0
    prev_mmr = 0.0
    for i, (floor, cap, mmr, lev) in enumerate(rows):
        if i:
            cum = floor * (mmr - prev_mmr) + cum
        out.append(Bracket(floor, cap, mmr, cum, lev))
        prev_mmr = mmr
    return tuple(out)


# BTCUSDT, freqtrade snapshot 2024-10 (binance-futures.md §1.4); cum re-derived and checked in the tests.
BTC_BRACKETS = brackets_from_table(
    [
        (0, 50_000, 0.004, 125),
        (50_000, 600_000, 0.005, 100),
        (600_000, 3_000_000, 0.0065, 75),
        (3_000_000, 12_000_000, 0.01, 50),
        (12_000_000, 70_000_000, 0.02, 25),
        (70_000_000, 100_000_000, 0.025, 20),
        (100_000_000, 230_000_000, 0.05, 10),
        (230_000_000, 480_000_000, 0.10, 5),
        (480_000_000, 600_000_000, 0.125, 4),
        (600_000_000, 800_000_000, 0.15, 3),
        (800_000_000, 1_200_000_000, 0.25, 2),
        (1_200_000_000, 1_800_000_000, 0.50, 1),
    ]
)


@dataclass(frozen=True)
class InstrumentSpec:
    pair: str
    step_size: float  # MARKET_LOT_SIZE stepSize: quantities are whole multiples of it
    tick_size: float
    min_notional: float  # MIN_NOTIONAL, waived for reduce-only orders
    liquidation_fee: float  # fraction of the liquidated notional, paid to the insurance fund
    brackets: tuple[Bracket, ...] = field(default=BTC_BRACKETS)
    assumed: tuple[str, ...] = ()  # which fields are not the symbol's own snapshot

    def round_qty_down(self, qty: float) -> float:
        """Truncate to the step size, as ccxt does before sending (never round up into more risk)."""
        steps = math.floor(qty / self.step_size + 1e-9)
        return round(steps * self.step_size, _decimals(self.step_size))

    def round_price(self, price: float) -> float:
        return round(round(price / self.tick_size) * self.tick_size, _decimals(self.tick_size))

    def bracket_for(self, notional: float) -> Bracket:
        for b in self.brackets:
            if notional < b.cap:
                return b
        return self.brackets[-1]

    def max_notional(self, leverage: int) -> float:
        """``maxNotionalValue``: the cap of the highest bracket that still allows ``leverage``."""
        allowed = [b.cap for b in self.brackets if b.max_leverage >= leverage]
        return max(allowed) if allowed else 0.0


def _decimals(step: float) -> int:
    return max(0, -int(math.floor(math.log10(step) + 1e-12)))


# Lot/tick/min-notional from exchangeInfo snapshots (binance-futures.md §7 for BTC). Liquidation fee: BTCUSDT's
# 0.0125 is documented; for the others it is assumed equal.
_SPECS: dict[str, InstrumentSpec] = {
    "BTC/USDT:USDT": InstrumentSpec("BTC/USDT:USDT", 0.001, 0.1, 100.0, 0.0125),
    "ETH/USDT:USDT": InstrumentSpec(
        "ETH/USDT:USDT", 0.001, 0.01, 20.0, 0.0125, assumed=("liquidation_fee", "brackets above tier 4")
    ),
    "SOL/USDT:USDT": InstrumentSpec("SOL/USDT:USDT", 1.0, 0.01, 5.0, 0.0125, assumed=("liquidation_fee", "brackets")),
    "BNB/USDT:USDT": InstrumentSpec("BNB/USDT:USDT", 0.01, 0.01, 5.0, 0.0125, assumed=("liquidation_fee", "brackets")),
    "XRP/USDT:USDT": InstrumentSpec(
        "XRP/USDT:USDT", 0.1, 0.0001, 5.0, 0.0125, assumed=("liquidation_fee", "brackets")
    ),
    "DOGE/USDT:USDT": InstrumentSpec(
        "DOGE/USDT:USDT", 1.0, 0.00001, 5.0, 0.0125, assumed=("liquidation_fee", "brackets")
    ),
}


def instrument_spec(pair: str) -> InstrumentSpec:
    """The spec for ``pair``; an unknown pair gets BTC's rules with a fine step and every field marked assumed."""
    spec = _SPECS.get(pair)
    if spec is not None:
        return spec
    return replace(
        _SPECS["BTC/USDT:USDT"],
        pair=pair,
        step_size=1e-6,
        tick_size=1e-8,
        min_notional=5.0,
        assumed=("step_size", "tick_size", "min_notional", "liquidation_fee", "brackets"),
    )
