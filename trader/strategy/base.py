"""The strategy interface shared by the backtest and the live engine.

A strategy is a ``backtrader.Strategy`` that
- declares its indicators as a pure, causal function of candle arrays (``compute_indicators``): the backtest
  computes them once over the whole series and feeds them as lines, a live feed recomputes them on its rolling
  window — the value at bar t may only depend on bars ≤ t (a test checks this for the reference strategy);
- reads only ``data.<line>[0]`` / ``[-n]`` and the account protocol below;
- trades through Backtrader's order API with exchange semantics carried in order info
  (``reduce_only``, ``close_position``, ``tag``), which a live broker maps to Binance orders.
Nothing here knows whether it runs on history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import backtrader as bt
import numpy as np

from trader.model.instruments import InstrumentSpec


class FuturesAccount(Protocol):
    """What a strategy may ask its broker, in the backtest and live alike."""

    @property
    def leverage(self) -> int: ...

    def wallet_balance(self) -> float: ...

    def available_balance(self) -> float: ...

    def instrument(self, data: bt.DataBase) -> InstrumentSpec: ...

    def risk_scale(self) -> float:
        """Multiplier on the risk a new entry may take: 1.0 normally; lower while the account is under
        protection (the latency safe mode halves entries). Always 1.0 in a backtest."""
        ...


@dataclass(frozen=True)
class Candles:
    """Candle arrays (float64) for indicator computation; ``ts_ms`` is the open time in UTC milliseconds."""

    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class FuturesStrategy(bt.Strategy):
    indicator_lines: ClassVar[tuple[str, ...]] = ()
    # True for a strategy whose ``next`` decides only for ``due_datas()``, in datas order, each pair from its own
    # lines and what the pairs before it left behind (the risk book, orders): the live engine then hands it each
    # pair's candle as soon as it and the pairs before it are in (trader/live/store.py), so a pair's order does
    # not wait for the other pairs' candles. A backtest pass moves every pair at once and sees the same order.
    decides_in_pair_order: ClassVar[bool] = False

    @classmethod
    def param_values(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        values = dict(cls.params._getitems())
        unknown = set(overrides or {}) - set(values)
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameters {sorted(unknown)}")
        values.update(overrides or {})
        return values

    @classmethod
    def compute_indicators(cls, candles: Candles, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Return one float64 array per name in ``indicator_lines``; NaN while warming up."""
        return {}

    @classmethod
    def warmup_bars(cls, params: Mapping[str, Any]) -> int:
        return 0

    def _clk_update(self) -> int:
        """Backtrader's clock update (a bar moved on some data: the strategy moves one step, its datetime the
        latest of the datas'), reading the datas' line buffers directly. Backtrader's own goes through
        ``len(data)`` and ``data.datetime[0]`` three times per data and pass: a third of a live pass's fixed cost
        with ten pairs (issue 16). Same fields, same result."""
        if self._oldsync:
            return int(super()._clk_update())
        bufs = self.__dict__.get("_clk_bufs")
        if bufs is None:
            bufs = self._clk_bufs = [(d.lines[0], d.lines.datetime) for d in self.datas]
        newdlens = [first.lencount for first, _dt in bufs]
        # Lists, not generators: a generator costs a frame resume per data, ten on the way to every live order.
        if any([nl > old for old, nl in zip(self._dlens, newdlens, strict=True)]):
            self.forward()
        # ``_idx`` is what the ``idx`` property returns (a call per data)
        self.lines.datetime[0] = max([dt.array[dt._idx] for (_first, dt), n in zip(bufs, newdlens, strict=True) if n])
        self._dlens = newdlens
        return len(self)

    def _getminperstatus(self) -> int:
        """Backtrader's (how many bars short of the datas' minimum periods the strategy is; negative: ready),
        from the same line buffers as ``_clk_update`` instead of ``len(data)`` through three classes per data."""
        bufs = self.__dict__.get("_clk_bufs")
        if bufs is None or self._oldsync:
            return int(super()._getminperstatus())
        self._minperstatus = status = max([mp - first.lencount
                                           for mp, (first, _dt) in zip(self._minperiods, bufs, strict=True)])
        return status

    def due_datas(self) -> list[bt.DataBase]:
        """The datas this pass decides for, in datas order: every one in a backtest (a pass moves all pairs); live,
        those the store released since the last pass (``LiveFeed.take_due``)."""
        return [d for d in self.datas if getattr(d, "take_due", _always)()]

    # --- helpers built only on the public broker API ---------------------------------------------------------
    @property
    def account(self) -> FuturesAccount:
        return self.broker

    def open_position(
        self,
        data: bt.DataBase,
        side: int,
        qty: float,
        stop_price: float,
        take_profits: Sequence[tuple[float, float]] = (),
    ) -> tuple[bt.Order, bt.Order, list[bt.Order]]:
        """Market entry with a reduce-only close-position stop and reduce-only take-profit limits.

        The protective orders are children of the entry: the broker places them once the entry fills (on
        Binance, a STOP_MARKET closePosition algo order and reduce-only LIMIT orders sent on the fill event).
        ``take_profits`` is (price, qty) per tier; quantities must already be stepped.
        """
        spec = self.account.instrument(data)
        enter = self.buy if side > 0 else self.sell
        leave = self.sell if side > 0 else self.buy
        entry = enter(data=data, size=qty, transmit=False, tag="entry")
        stop = leave(data=data, size=qty, exectype=bt.Order.Stop, price=spec.round_price(stop_price), parent=entry,
              transmit=not take_profits, close_position=True, tag="stop")
        tps = []
        for n, (price, tp_qty) in enumerate(take_profits, 1):
            if tp_qty > 0:
                tps.append(leave(data=data, size=tp_qty, exectype=bt.Order.Limit, price=spec.round_price(price), parent=entry,
                      transmit=n == len(take_profits), reduce_only=True, tag=f"tp{n}"))
        return entry, stop, tps

    def close_position(self, data: bt.DataBase, tag: str = "exit_signal", **info: object) -> bt.Order | None:
        """Market reduce-only close of the whole position (protective orders are cancelled when it is flat).
        ``info`` goes on the order (``forced=True``: a person's exit, sent without waiting for a live bar)."""
        size = self.getposition(data).size
        if not size:
            return None
        if size > 0:
            return self.sell(data=data, size=abs(size), reduce_only=True, tag=tag, **info)
        return self.buy(data=data, size=abs(size), reduce_only=True, tag=tag, **info)


def _always() -> bool:
    return True


def split_take_profits(qty: float, shares: Sequence[float], spec: InstrumentSpec) -> list[float]:
    """Split ``qty`` over tiers by ``shares``, each stepped down; the last tier takes the remainder."""
    out: list[float] = []
    left = qty
    for n, share in enumerate(shares):
        if n == len(shares) - 1:
            part = spec.round_qty_down(left)
        else:
            part = min(spec.round_qty_down(qty * share), left)
        out.append(part)
        left = spec.round_qty_down(left - part)
    return out
