"""A depth book synthesized around the replayed price.

There is no real order flow in a replay, so the book is a model: a spread of ``spread_bps`` (never under one tick),
``levels`` price levels ``level_step_bps`` apart, each holding about ``level_notional`` USDT, growing away from the
touch. In volatile bars the spread widens and the depth thins by the bar's range relative to an ordinary bar — what
market makers do — so market orders slip more exactly when it hurts. Quantities carry a deterministic per-minute
jitter so the book looks alive but tests stay reproducible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trader.sim.filters import SymbolSpec


@dataclass
class BookConfig:
    spread_bps: float = 0.2
    levels: int = 50
    level_step_bps: float = 0.5
    level_notional: float = 150_000.0
    volatility_thinning: float = 0.5

    def update(self, values: dict[str, object]) -> None:
        for k, v in values.items():
            if not hasattr(self, k):
                raise KeyError(k)
            setattr(self, k, type(getattr(self, k))(v))


@dataclass(frozen=True)
class Book:
    bids: list[tuple[Decimal, Decimal]]  # best first
    asks: list[tuple[Decimal, Decimal]]


def _jitter(symbol: str, minute: int, i: int) -> float:
    h = hashlib.blake2b(f"{symbol}:{minute}:{i}".encode(), digest_size=4).digest()
    return 0.6 + 0.8 * int.from_bytes(h, "big") / 2**32


def _round(value: Decimal, unit: Decimal, rounding: str) -> Decimal:
    return (value / unit).quantize(Decimal(1), rounding=rounding) * unit


def synthesize(spec: SymbolSpec, cfg: BookConfig, price: float, volatility: float, t_ms: int) -> Book:
    mid = Decimal(repr(price))
    stress = max(0.0, volatility - 1.0)
    widen = 1.0 + stress * cfg.volatility_thinning
    half = max(spec.tick_size / 2, mid * Decimal(repr(cfg.spread_bps * widen / 2e4)))
    best_bid = _round(mid - half, spec.tick_size, ROUND_FLOOR)
    best_ask = _round(mid + half, spec.tick_size, ROUND_CEILING)
    if best_ask <= best_bid:
        best_ask = best_bid + spec.tick_size
    step = max(spec.tick_size, _round(mid * Decimal(repr(cfg.level_step_bps / 1e4)), spec.tick_size, ROUND_FLOOR))
    minute = t_ms // 60_000
    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []
    for i in range(cfg.levels):
        base_qty = cfg.level_notional * (1 + 0.1 * i) / price / widen
        for side, book, sign, start in (("b", bids, -1, best_bid), ("a", asks, 1, best_ask)):
            q = Decimal(repr(base_qty * _jitter(spec.symbol + side, minute, i)))
            q = max(spec.step_size, _round(q, spec.step_size, ROUND_FLOOR))
            p = start + sign * step * i
            if p > 0:
                book.append((p, q))
    return Book(bids, asks)


def walk(levels: list[tuple[Decimal, Decimal]], qty: Decimal, limit: Decimal | None, side: str
         ) -> list[tuple[Decimal, Decimal]]:
    """Fills (price, qty) taking ``qty`` from ``levels`` (best first), not beyond ``limit`` when given."""
    fills: list[tuple[Decimal, Decimal]] = []
    left = qty
    for p, q in levels:
        if left <= 0:
            break
        if limit is not None and ((side == "BUY" and p > limit) or (side == "SELL" and p < limit)):
            break
        take = min(left, q)
        fills.append((p, take))
        left -= take
    return fills


@dataclass
class DepthFeed:
    """The published book of one symbol with Binance's update ids: REST snapshots and websocket diffs are cut from
    the same sequence so a client can keep a local book (snapshot lastUpdateId, then events chained by ``pu``)."""

    symbol: str
    last_id: int = 1_000_000
    book: Book | None = None

    def publish(self, book: Book, t_ms: int) -> dict[str, object] | None:
        """Make ``book`` current; returns the depthUpdate diff event, or None if nothing changed."""
        old = self.book
        self.book = book
        if old is not None and old == book:
            return None
        prev = self.last_id
        self.last_id += 1
        bids = _diff(old.bids if old else [], book.bids)
        asks = _diff(old.asks if old else [], book.asks)
        return {"e": "depthUpdate", "E": t_ms, "T": t_ms, "s": self.symbol, "U": prev + 1, "u": self.last_id,
                "pu": prev, "b": bids, "a": asks}


def _diff(old: list[tuple[Decimal, Decimal]], new: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
    o = dict(old)
    n = dict(new)
    out = [[format(p, "f"), format(q, "f")] for p, q in new if o.get(p) != q]
    out += [[format(p, "f"), "0"] for p in o if p not in n]
    return out
