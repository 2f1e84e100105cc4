"""A contract's exchange rules as one value: lot and tick sizes, minimum notional, liquidation fee, leverage brackets.

Built from what Binance publishes (binance-futures.md §1.4, §7): a symbol's ``exchangeInfo`` entry and its
``GET /fapi/v1/leverageBracket`` rows, live or from a dated snapshot (``trader.model.rules``). Nothing here makes up
a number: a field the source lacks is either refused or, where the docs give a documented default (the liquidation
fee), taken with the field's name in ``assumed`` so a backtest can say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# binance-futures.md §3.2: BTCUSDT's documented rate, used (and reported as assumed) when a source omits it.
DEFAULT_LIQUIDATION_FEE = 0.0125


class MissingRules(ValueError):
    """A pair's exchange rules are not known; the message names the pair and what is missing."""


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin tier: notional in [floor, cap) uses ``mmr`` and maintenance amount ``cum``."""

    floor: float
    cap: float
    mmr: float
    cum: float
    max_leverage: int


def brackets_from_table(rows: Iterable[tuple[float, float, float, int]]) -> tuple[Bracket, ...]:
    """Brackets from (floor, cap, mmr, max_leverage) rows, deriving ``cum`` as Binance does:
    ``cum_n = floor_n × (mmr_n − mmr_{n−1}) + cum_{n−1}`` keeps the maintenance margin continuous at each floor."""
    out: list[Bracket] = []
    cum = 0.0
    prev_mmr = 0.0
    for i, (floor, cap, mmr, lev) in enumerate(rows):
        if i:
            cum = floor * (mmr - prev_mmr) + cum
        out.append(Bracket(float(floor), float(cap), float(mmr), cum, int(lev)))
        prev_mmr = mmr
    return tuple(out)


def brackets_from_api(rows: Sequence[Mapping[str, Any]]) -> tuple[Bracket, ...]:
    """Brackets from ``leverageBracket`` rows (``bracket, initialLeverage, notionalFloor, notionalCap,
    maintMarginRatio, cum``), as Binance sends them or as ccxt keeps them in a tier's ``info``. ``cum`` is the
    exchange's own figure, not re-derived."""
    ordered = sorted(rows, key=lambda r: float(r["notionalFloor"]))
    out = tuple(Bracket(float(r["notionalFloor"]), float(r["notionalCap"]), float(r["maintMarginRatio"]),
                        float(r.get("cum") or 0.0), int(float(r["initialLeverage"]))) for r in ordered)
    if not out:
        raise ValueError("no brackets")
    return out


def brackets_from_tiers(tiers: Sequence[Mapping[str, Any]]) -> tuple[Bracket, ...]:
    """Brackets from ccxt ``fetch_leverage_tiers`` entries: the raw row in ``info`` when present (it carries
    ``cum``), else ccxt's parsed fields with ``cum`` derived."""
    if tiers and all(isinstance(t.get("info"), Mapping) and "notionalFloor" in t["info"] for t in tiers):
        return brackets_from_api([t["info"] for t in tiers])
    rows = sorted((float(t.get("minNotional") or 0), float(t.get("maxNotional") or math.inf),
                    float(t.get("maintenanceMarginRate") or 0), int(t["maxLeverage"])) for t in tiers)
    return brackets_from_table(rows)


def as_brackets(value: Sequence[Any]) -> tuple[Bracket, ...]:
    """Brackets from any of the shapes in use: Bracket values, leverageBracket rows, ccxt tiers."""
    if not value:
        return ()
    first = value[0]
    if isinstance(first, Bracket):
        return tuple(value)
    if "notionalFloor" in first:
        return brackets_from_api(value)
    return brackets_from_tiers(value)


@dataclass(frozen=True)
class InstrumentSpec:
    pair: str
    step_size: float  # LOT_SIZE stepSize: quantities are whole multiples of it
    tick_size: float
    min_notional: float  # MIN_NOTIONAL, waived for reduce-only orders
    liquidation_fee: float  # fraction of the liquidated notional, paid to the insurance fund
    brackets: tuple[Bracket, ...] = ()
    assumed: tuple[str, ...] = ()  # fields not from the symbol's own exchange data
    min_qty: float = 0.0
    max_qty: float = math.inf  # LOT_SIZE maxQty (limit orders)
    market_max_qty: float = math.inf  # MARKET_LOT_SIZE maxQty
    source: str = ""  # where the rules came from (live exchange, snapshot file and day)

    def round_qty_down(self, qty: float) -> float:
        """Truncate to the step size, as ccxt does before sending (never round up into more risk)."""
        steps = math.floor(qty / self.step_size + 1e-9)
        return round(steps * self.step_size, _decimals(self.step_size))

    def round_price(self, price: float) -> float:
        return round(round(price / self.tick_size) * self.tick_size, _decimals(self.tick_size))

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].max_leverage if self.brackets else 0


def _decimals(step: float) -> int:
    return max(0, -int(math.floor(math.log10(step) + 1e-12)))


def _filters(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f.get("filterType", ""): f for f in entry.get("filters") or ()}


def spec_from_exchange(pair: str, entry: Mapping[str, Any], bracket_rows: Sequence[Mapping[str, Any]], *,
                       source: str = "", assumed: Sequence[str] = ()) -> InstrumentSpec:
    """The spec from a symbol's ``exchangeInfo`` entry and its ``leverageBracket`` rows.

    Raises MissingRules naming the filter or table that is absent: lot step, tick, minimum notional and brackets
    have no safe default. Only the liquidation fee falls back to the documented BTCUSDT rate, marked assumed."""
    f = _filters(entry)
    lot, mlot, pf, mn = f.get("LOT_SIZE"), f.get("MARKET_LOT_SIZE"), f.get("PRICE_FILTER"), f.get("MIN_NOTIONAL")
    missing = [name for name, v in (("LOT_SIZE", lot), ("PRICE_FILTER", pf), ("MIN_NOTIONAL", mn)) if not v]
    if not bracket_rows:
        missing.append("leverage brackets")
    if missing:
        raise MissingRules(f"{pair}: exchange rules incomplete ({source or 'no source'}): missing "
                           + ", ".join(missing))
    notes = list(assumed)
    liq = entry.get("liquidationFee")
    if liq in (None, ""):
        liq = DEFAULT_LIQUIDATION_FEE
        notes.append("liquidation_fee")
    assert lot is not None and pf is not None and mn is not None
    return InstrumentSpec(
        pair=pair,
        step_size=float(lot["stepSize"]),
        tick_size=float(pf["tickSize"]),
        min_notional=float(mn.get("notional") or mn.get("minNotional") or 0.0),
        liquidation_fee=float(liq),
        brackets=brackets_from_api(bracket_rows),
        assumed=tuple(dict.fromkeys(notes)),
        min_qty=float(lot.get("minQty") or 0.0),
        max_qty=float(lot.get("maxQty") or math.inf),
        market_max_qty=float((mlot or lot).get("maxQty") or math.inf),
        source=source,
    )


@dataclass(frozen=True)
class FeeSchedule:
    """Commission rates (VIP 0 USDⓈ-M by default, binance-futures.md §5); live reads the account's own."""

    maker: float = 0.0002
    taker: float = 0.0005

    def fee(self, price: float, qty: float, maker: bool) -> float:
        """Commission on one fill: notional × rate, charged on every fill (entries, exits, partials)."""
        return abs(qty) * price * (self.maker if maker else self.taker)


MAKER_FEE = FeeSchedule.maker
TAKER_FEE = FeeSchedule.taker

__all__ = [
    "DEFAULT_LIQUIDATION_FEE", "MAKER_FEE", "TAKER_FEE", "Bracket", "FeeSchedule", "InstrumentSpec", "MissingRules",
    "as_brackets", "brackets_from_api", "brackets_from_table", "brackets_from_tiers", "spec_from_exchange",
]
