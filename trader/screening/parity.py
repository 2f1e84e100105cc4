"""The parity contract between the screening engine and the Backtrader path, as one function the tests, the bench
and hyperopt's re-run all use: the same trades in the same order — entry and exit bar, side and exit reason equal;
size within one lot step, entry and exit prices within one tick."""

from __future__ import annotations

from dataclasses import dataclass

from trader.backtest.broker import TradeRecord
from trader.model.instruments import InstrumentSpec


@dataclass(frozen=True)
class Mismatch:
    index: int  # position in the trade lists
    field: str
    backtrader: object
    screening: object

    def __str__(self) -> str:
        return f"trade {self.index}: {self.field} backtrader={self.backtrader!r} screening={self.screening!r}"


def compare_trades(backtrader: list[TradeRecord], screening: list[TradeRecord],
                   specs: dict[str, InstrumentSpec]) -> list[Mismatch]:
    """Every difference that breaks the contract (empty: parity holds)."""
    out: list[Mismatch] = []
    if len(backtrader) != len(screening):
        out.append(Mismatch(min(len(backtrader), len(screening)), "count", len(backtrader), len(screening)))
    for k, (a, b) in enumerate(zip(backtrader, screening, strict=False)):
        spec = specs[a.pair]
        for name in ("pair", "open_ms", "close_ms", "side", "exit_reason", "liquidated"):
            if getattr(a, name) != getattr(b, name):
                out.append(Mismatch(k, name, getattr(a, name), getattr(b, name)))
        if abs(a.qty - b.qty) > spec.step_size * (1 + 1e-9):
            out.append(Mismatch(k, "qty", a.qty, b.qty))
        for name in ("entry_price", "exit_price"):
            if abs(getattr(a, name) - getattr(b, name)) > spec.tick_size * (1 + 1e-9):
                out.append(Mismatch(k, name, getattr(a, name), getattr(b, name)))
        if len(out) >= 20:  # enough to see what diverged
            break
    return out
