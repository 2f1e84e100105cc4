"""A local order book kept by Binance's procedure for USDⓈ-M diff streams.

1. Buffer ``depthUpdate`` events; fetch a REST snapshot (``lastUpdateId``).
2. Drop buffered events with ``u < lastUpdateId``.
3. The first applied event must satisfy ``U <= lastUpdateId <= u``.
4. Every later event's ``pu`` must equal the previous event's ``u``; otherwise the book is out of sync and must be
   rebuilt from a new snapshot.
Quantities are absolute; a quantity of 0 removes the level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class OutOfSync(Exception):
    """The diff stream skipped an update: the book must be rebuilt from a snapshot."""


@dataclass
class LocalOrderBook:
    symbol: str
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    last_update_id: int | None = None  # u of the last applied event (or the snapshot's id)
    synced: bool = False
    _buffer: list[Mapping[str, Any]] = field(default_factory=list)

    def buffer(self, event: Mapping[str, Any]) -> None:
        """Before the snapshot arrives, events are only kept; once it is loaded they are applied (the first one
        must fit the snapshot: ``apply``). Kept after the snapshot, an event that arrives later than the snapshot's
        answer would never be looked at, and the book would stay out of sync for good."""
        if self.last_update_id is not None:
            self.apply(event)
        else:
            self._buffer.append(event)

    def load_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Install a REST depth snapshot and replay the buffered events that follow it."""
        self.bids = _levels(snapshot["bids"])
        self.asks = _levels(snapshot["asks"])
        self.last_update_id = int(snapshot["lastUpdateId"])
        self.synced = False
        pending, self._buffer = self._buffer, []
        for event in pending:
            if int(event["u"]) < self.last_update_id:
                continue
            self.apply(event)

    def apply(self, event: Mapping[str, Any]) -> None:
        if self.last_update_id is None:
            self._buffer.append(event)
            return
        first, final, previous = int(event["U"]), int(event["u"]), int(event.get("pu", -1))
        if not self.synced:
            if final < self.last_update_id:
                return
            # It covers the snapshot's id, or (a feed whose events carry one id each) follows it directly.
            if not (first <= self.last_update_id <= final or previous == self.last_update_id):
                self._reset()
                raise OutOfSync(f"{self.symbol}: first event [{first}, {final}] does not cover snapshot {self.last_update_id}")
            self.synced = True
        elif previous != self.last_update_id:
            self._reset()
            raise OutOfSync(f"{self.symbol}: pu {previous} != last u {self.last_update_id}")
        _update(self.bids, event.get("b", ()))
        _update(self.asks, event.get("a", ()))
        self.last_update_id = final

    def _reset(self) -> None:
        self.synced = False
        self.last_update_id = None
        self.bids.clear()
        self.asks.clear()

    # -- reading ----------------------------------------------------------------------------------------------------
    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        return max(self.bids.items()) if self.bids else None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        return min(self.asks.items()) if self.asks else None

    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        return (bid[0] + ask[0]) / 2 if bid and ask else None

    def spread(self) -> Decimal | None:
        """Relative spread (ask − bid) / mid."""
        bid, ask, mid = self.best_bid(), self.best_ask(), self.mid()
        return (ask[0] - bid[0]) / mid if bid and ask and mid else None

    def depth_within(self, band: Decimal) -> Decimal:
        """Quote notional resting within ±band (a fraction) of mid, both sides."""
        mid = self.mid()
        if mid is None:
            return Decimal(0)
        lo, hi = mid * (1 - band), mid * (1 + band)
        return sum((p * q for p, q in self.bids.items() if p >= lo), Decimal(0)) + sum(
            (p * q for p, q in self.asks.items() if p <= hi), Decimal(0)
        )

    def top(self, n: int = 5) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        return sorted(self.bids.items(), reverse=True)[:n], sorted(self.asks.items())[:n]


def _levels(rows: Iterable[Sequence[Any]]) -> dict[Decimal, Decimal]:
    out: dict[Decimal, Decimal] = {}
    for price, qty, *_ in rows:
        q = Decimal(str(qty))
        if q > 0:
            out[Decimal(str(price))] = q
    return out


def _update(side: dict[Decimal, Decimal], rows: Iterable[Sequence[Any]]) -> None:
    for price, qty, *_ in rows:
        p, q = Decimal(str(price)), Decimal(str(qty))
        if q == 0:
            side.pop(p, None)
        else:
            side[p] = q
