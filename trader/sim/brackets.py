"""Leverage brackets (maintenance-margin tiers) and the maintenance margin they imply."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Bracket:
    bracket: int
    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal
    mmr: Decimal
    cum: Decimal

    def as_api(self) -> dict[str, object]:
        return {
            "bracket": self.bracket,
            "initialLeverage": self.initial_leverage,
            "notionalCap": int(self.notional_cap),
            "notionalFloor": int(self.notional_floor),
            "maintMarginRatio": float(self.mmr),
            "cum": float(self.cum),
        }


def build(rows: list[tuple[int, int, int, str]]) -> list[Bracket]:
    """Rows of (max leverage, floor, cap, mmr); ``cum`` is derived so maintenance margin stays continuous:
    cum_n = floor_n × (mmr_n − mmr_{n−1}) + cum_{n−1}."""
    out: list[Bracket] = []
    cum = Decimal(0)
    prev_mmr = Decimal(0)
    for i, (lev, floor, cap, mmr) in enumerate(rows, start=1):
        m = Decimal(mmr)
        if i > 1:
            cum = Decimal(floor) * (m - prev_mmr) + cum
        out.append(Bracket(i, lev, Decimal(floor), Decimal(cap), m, cum))
        prev_mmr = m
    return out


# BTCUSDT, freqtrade snapshot 2024-10 (binance_leverage_tiers.json), as tabled in binance-futures.md §1.4.
BTCUSDT = build([
    (125, 0, 50_000, "0.004"),
    (100, 50_000, 600_000, "0.005"),
    (75, 600_000, 3_000_000, "0.0065"),
    (50, 3_000_000, 12_000_000, "0.01"),
    (25, 12_000_000, 70_000_000, "0.02"),
    (20, 70_000_000, 100_000_000, "0.025"),
    (10, 100_000_000, 230_000_000, "0.05"),
    (5, 230_000_000, 480_000_000, "0.1"),
    (4, 480_000_000, 600_000_000, "0.125"),
    (3, 600_000_000, 800_000_000, "0.15"),
    (2, 800_000_000, 1_200_000_000, "0.25"),
    (1, 1_200_000_000, 1_800_000_000, "0.5"),
])

# The 2021 BTCUSDT table behind Binance's liquidation-price FAQ example (cum 16,300 at 2.5 %).
BTCUSDT_2021 = build([
    (125, 0, 50_000, "0.004"),
    (100, 50_000, 250_000, "0.005"),
    (50, 250_000, 1_000_000, "0.01"),
    (20, 1_000_000, 10_000_000, "0.025"),
    (10, 10_000_000, 20_000_000, "0.05"),
    (5, 20_000_000, 50_000_000, "0.1"),
    (4, 50_000_000, 100_000_000, "0.125"),
    (3, 100_000_000, 200_000_000, "0.15"),
    (2, 200_000_000, 300_000_000, "0.25"),
    (1, 300_000_000, 9_223_372_036_854_775_807, "0.5"),
])

# ETHUSDT shared BTCUSDT's first four tiers in the 2024 snapshot; deeper tiers are an approximation.
ETHUSDT = BTCUSDT

# Mid-cap default (SOLUSDT-like, approximate): smaller caps, higher rates.
DEFAULT = build([
    (75, 0, 5_000, "0.005"),
    (50, 5_000, 50_000, "0.01"),
    (25, 50_000, 600_000, "0.02"),
    (20, 600_000, 1_200_000, "0.025"),
    (10, 1_200_000, 3_000_000, "0.05"),
    (5, 3_000_000, 6_000_000, "0.1"),
    (4, 6_000_000, 9_000_000, "0.125"),
    (3, 9_000_000, 12_000_000, "0.15"),
    (2, 12_000_000, 15_000_000, "0.25"),
    (1, 15_000_000, 30_000_000, "0.5"),
])

TABLES: dict[str, list[Bracket]] = {"BTCUSDT": BTCUSDT, "ETHUSDT": ETHUSDT}


def table_for(symbol: str) -> list[Bracket]:
    return TABLES.get(symbol, DEFAULT)


def bracket_for(table: list[Bracket], notional: Decimal) -> Bracket:
    """The bracket whose [floor, cap) holds |notional|; the last one beyond the top cap."""
    n = abs(notional)
    for b in table:
        if n < b.notional_cap:
            return b
    return table[-1]


def maintenance_margin(table: list[Bracket], notional: Decimal) -> Decimal:
    b = bracket_for(table, notional)
    return abs(notional) * b.mmr - b.cum


def max_notional(table: list[Bracket], leverage: int) -> Decimal:
    """Largest position notional allowed at ``leverage``: cap of the highest bracket still allowing it."""
    best = Decimal(0)
    for b in table:
        if b.initial_leverage >= leverage:
            best = b.notional_cap
    return best


def max_leverage(table: list[Bracket]) -> int:
    return table[0].initial_leverage
