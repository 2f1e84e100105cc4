"""Slippage on taker fills: a backtest assumption (the exchange's own rules and money live in ``trader.model``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlippageModel:
    """Adverse price offset on taker fills (market orders, triggered stops, liquidation excluded).

    ``bps`` is a flat cost; ``range_share`` adds a share of the fill bar's high-low range, which grows slippage in
    violent bars where a fixed number would flatter the result. Maker (resting limit) fills get no slippage.
    """

    bps: float = 1.0
    range_share: float = 0.0

    def apply(self, price: float, is_buy: bool, bar_range: float = 0.0) -> float:
        off = price * self.bps * 1e-4 + self.range_share * bar_range
        return price + off if is_buy else price - off
