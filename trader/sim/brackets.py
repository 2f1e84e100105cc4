"""Leverage brackets (maintenance-margin tiers) and the maintenance margin they imply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


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


def from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Bracket]:
    """A table from ``leverageBracket`` rows (a snapshot file or Binance's answer), Decimal from the exchange's own
    figures: ``cum`` as published, not re-derived."""
    out = []
    for r in sorted(rows, key=lambda r: Decimal(str(r["notionalFloor"]))):
        out.append(Bracket(int(r["bracket"]), int(Decimal(str(r["initialLeverage"]))), Decimal(str(r["notionalFloor"])),
                           Decimal(str(r["notionalCap"])), Decimal(str(r["maintMarginRatio"])),
                           Decimal(str(r.get("cum") or 0))))
    return out


def _bundled(symbol: str) -> list[Bracket]:
    from trader.model.rules import raw_rules

    _, rows = raw_rules(symbol)
    assert rows, f"no bundled leverage brackets for {symbol}"
    return from_rows(rows)


# BTCUSDT from the bundled leverageBracket snapshot (binance-futures.md §1.4's table, freqtrade 2024-10).
BTCUSDT = _bundled("BTCUSDT")

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

# For a symbol no snapshot covers (the market mirror trades whatever Binance lists): a mid-cap stand-in, smaller
# caps and higher rates than BTC. The simulator is the exchange here; the engine reads this table from it.
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

def table_for(symbol: str, data_dir: Any = None, at_ms: int | None = None) -> list[Bracket]:
    """The symbol's table from the rule snapshot nearest ``at_ms`` (the run's data directory, else bundled), the
    same data the model and a backtest read; DEFAULT when no snapshot has it."""
    from trader.model.rules import raw_rules

    _, rows = raw_rules(symbol, data_dir, at_ms)
    return from_rows(rows) if rows else DEFAULT


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
