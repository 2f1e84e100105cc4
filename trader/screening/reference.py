"""The screening twin of the reference strategy (``RsiBollingerStrategy``, trader/strategy/reference.py).

Indicators come from the strategy class's own ``compute_indicators``. The entry decision is ``_enter`` step for
step on the same functions: ``stop_distance``, ``size_entry`` (the account's risk rules through a ``RiskBook``
built by ``limits_from_params`` from the same parameters, then ``risk_position_size``), ``vol_rank`` (fed the
kernel's arrays through a two-method stand-in for Backtrader's lines) and ``split_take_profits``; then the broker's
acceptance checks through ``trader.model.money`` (``open_cost``, ``max_notional``). The risk book is the run's,
shared by every pair; trader/screening/engine.py tells it what the strategy's next() and notify_order would: the
wallet and the clock each bar, the hourly closes, every close with the P&L the strategy saw and the wallet then,
and every entry that never filled. The position-management half (time stop, break-even, trailing) runs in the
kernel.

A change to ``_enter`` or ``notify_order`` that is not made here shows up in tests/screening/test_parity.py as a
trade-list difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trader.model.instruments import InstrumentSpec
from trader.model.money import max_notional, open_cost
from trader.risk.book import RiskBook
from trader.strategy.base import split_take_profits
from trader.strategy.sizing import size_entry, stop_distance, vol_rank


@dataclass(frozen=True)
class EntryOrder:
    side: int
    qty: float
    stop: float  # rounded to the tick, as open_position sends it
    tp_prices: np.ndarray
    tp_qtys: np.ndarray
    trail_mult: float  # ATRs behind the close once trailing (0: never)
    trail_on_fill: bool = False  # trail from the entry fill rather than from the first target
    hold_ms: float = 0.0  # time stop (managed strategies), from the decision bar's close


def refused(spec: InstrumentSpec, leverage: int, side: int, qty: float, ref: float, mark: float,
            free: float) -> bool:
    """FuturesBroker._validate for a market entry: minimum notional, position cap, cost to open."""
    return (qty * ref < spec.min_notional or abs(side * qty) * mark > max_notional(spec.brackets, leverage)
            or open_cost(qty, ref, mark, leverage, side) > free)


def settle_book(book: RiskBook, pair: str, closed: list[tuple[float, float]]) -> None:
    """How the last booked entry ended, as the strategy's notify_order tells it: ``closed`` holds (price P&L as
    the strategy saw it, wallet then) of the trade it became, or nothing when it never filled."""
    if closed:
        pnl, wallet = closed[-1]
        book.closed(pair, pnl, wallet)
    else:
        book.cancelled(pair)


class _Line:
    """The part of a Backtrader line ``vol_rank`` reads: ``len`` (bars so far) and ``get(size=n)`` (the last n)."""

    __slots__ = ("arr", "i")

    def __init__(self, arr: np.ndarray, i: int) -> None:
        self.arr, self.i = arr, i

    def __len__(self) -> int:
        return self.i + 1

    def get(self, size: int = 1) -> np.ndarray:
        return self.arr[max(0, self.i + 1 - size): self.i + 1]


class ReferenceSession:
    """One pair's strategy state outside the kernel for one segment: the entry in flight; the risk book is the
    run's, shared by every pair (the engine tells it the clock and the closes, as the strategy's next() does)."""

    mode = 0.0  # kernel.MODE_REFERENCE

    def __init__(self, strategy: type, params: Mapping[str, Any], spec: InstrumentSpec, leverage: int, pair: str,
                 ts: np.ndarray, bar_ms: int, close: np.ndarray, ind: Mapping[str, np.ndarray],
                 book: RiskBook) -> None:
        self.p = params
        self.spec = spec
        self.leverage = leverage
        self.pair = pair
        self.ts = ts
        self.bar_ms = bar_ms
        self.close = close
        self.atr = np.asarray(ind["atr"], dtype="float64")
        n = len(ts)
        # The kernel's rows: signal, trailing ATR, exit events (none: the reference exits by stops and time only).
        self.rows = (np.asarray(ind["signal"], dtype="float64"), self.atr, np.zeros(n), np.zeros(n))
        self.time_stop_bars = float(params["time_stop_bars"])
        self.breakeven = bool(params["breakeven"])
        self.book = book
        self.pending = False  # an entry was sized and booked as open; its outcome is told before the next one
        self.trades_at_entry = 0
        self.refused_at = -1  # bar after which a refused-at-submit entry is told "cancelled" (next bar's notify)
        self.refused_seq = 0.0

    def settle(self, closed: list[tuple[float, float]]) -> None:
        """Tell the book how the last entry ended: ``closed`` holds (price P&L, wallet after) of the trade it
        became, or nothing when it never filled (rejected, or dropped at the fill)."""
        if not self.pending:
            return
        settle_book(self.book, self.pair, closed)
        self.pending = False

    def decide(self, i: int, side: int, wallet: float, available: float, free: float,
               mark: float) -> EntryOrder | None:
        """``RsiBollingerStrategy._enter`` at bar ``i`` (flat, no entry pending), then the broker's ``submit``
        checks for the market entry (``free``: available less the margin of other pairs' pending entries); None
        when either refuses it."""
        p = self.p
        spec, lev = self.spec, self.leverage
        ref = float(self.close[i])
        atr = float(self.atr[i])
        dist = stop_distance(lev, atr, ref, p["atr_multiplier"], p["stop_leverage_factor"])
        dist = max(dist, min(p["min_stop_distance"], p["stop_leverage_factor"] / lev))
        vol = vol_rank(_Line(self.atr, i), _Line(self.close, i), int(p["volatility_window"]))
        size, _decision = size_entry(self.book, wallet, available, self.pair, side, ref, dist, spec, lev,
                                     p["risk_per_trade"] * 1.0, p["taker_fee"], vol)  # risk_scale() is 1.0
        if size.qty <= 0:
            return None
        qty = size.qty
        self.pending = True
        # FuturesBroker.submit / _validate for the market entry: refused here, the book hears "cancelled" at the
        # next bar's notifications.
        if refused(spec, lev, side, qty, ref, mark, free):
            self.refused_at = i
            return None
        stop = ref * (1 - side * dist)
        shares = split_take_profits(qty, p["tp_shares"], spec)
        tps = [(ref * (1 + side * m), q) for m, q in zip(p["tp_moves"], shares, strict=True)]
        return EntryOrder(side, qty, spec.round_price(stop),
                          np.array([spec.round_price(px) for px, _ in tps], dtype="float64"),
                          np.array([q for _, q in tps], dtype="float64"), float(p["trail_atr_multiplier"]))
