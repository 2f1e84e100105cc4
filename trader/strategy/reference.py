"""Reference strategy: RSI + Bollinger mean reversion with the product's risk rules.

Long when the close is below the lower band and RSI is oversold, short on the mirror image. Each entry carries
an ATR stop capped inside the liquidation distance, three take-profit tiers with partial closes (30/30/40 % at
0.8/2/5 % by default), a break-even stop after the first tier and a time stop (risk-rules.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import backtrader as bt
import numpy as np
import talib

from trader.optimize.spaces import Categorical, Dimension, FloatRange, IntRange
from trader.risk.limits import RISK_PARAMS
from trader.strategy.base import Candles, FuturesStrategy, split_take_profits
from trader.strategy.sizing import size_entry, stop_distance, strategy_book, vol_rank

_EPOCH_DAYS = 719163.0
_MS_PER_DAY = 86_400_000.0


def rsi_bollinger_signal(close: np.ndarray, rsi: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                         rsi_low: float, rsi_high: float) -> np.ndarray:
    """+1 long, −1 short, 0 none; NaN inputs (warm-up) give 0 because NaN comparisons are false."""
    sig = np.zeros(len(close))
    sig[(close < lower) & (rsi < rsi_low)] = 1.0
    sig[(close > upper) & (rsi > rsi_high)] = -1.0
    return sig


class _PairState:
    __slots__ = ("entry", "stop", "tps", "held", "exiting", "side", "entry_price", "risk", "stop_price", "trailing",
                 "realized")

    def __init__(self) -> None:
        self.entry: bt.Order | None = None
        self.stop: bt.Order | None = None
        self.tps: list[bt.Order] = []
        self.held = 0
        self.exiting = False
        self.side = 0
        self.entry_price = 0.0
        self.risk = 0.0  # loss at the stop, as a fraction of the wallet when the entry was sized
        self.stop_price = 0.0
        self.trailing = False  # after the first target: the stop follows the price at trail_atr_multiplier·ATR
        self.realized = 0.0  # price P&L of the fills so far (the loss-streak rule reads its sign at the close)

    @property
    def active(self) -> bool:
        return self.entry is not None


class RsiBollingerStrategy(FuturesStrategy):
    params = (
        ("rsi_period", 14),
        ("rsi_low", 30.0),
        ("rsi_high", 70.0),
        ("bb_period", 20),
        ("bb_dev", 2.0),
        ("atr_period", 14),
        ("atr_multiplier", 2.0),
        ("stop_leverage_factor", 0.8),
        # 1m ATR stops sit inside the noise and make the notional explode (2 % risk / 0.1 % stop = 20x wallet),
        # so the reference strategy keeps stops at least this far away.
        ("min_stop_distance", 0.005),
        ("tp_moves", (0.008, 0.02, 0.05)),
        ("tp_shares", (0.3, 0.3, 0.4)),
        ("breakeven", True),
        # After the first target the stop trails the close by this many ATRs (0 disables); it only ever tightens,
        # and moves only by more than trail_min_step of the price so the exchange is not flooded with stop moves.
        ("trail_atr_multiplier", 1.5),
        ("trail_min_step", 0.001),
        ("time_stop_bars", 60),
        ("taker_fee", 0.0005),
        # The account's risk rules (trader/risk): per trade, per coin, total budget, streak, drawdown, ...
        *RISK_PARAMS,
    )
    indicator_lines: ClassVar[tuple[str, ...]] = ("rsi", "bb_upper", "bb_lower", "atr", "signal")
    # Hyperopt search spaces (trader/optimize). buy = when to open (both sides: the signal is symmetric), sell =
    # when to close besides stop and targets, roi = take-profit tiers as price moves from entry (risk-rules.md
    # ranges: 0.5–1 %, 1–3 %, 3–10 %; the disjoint ranges keep the tiers ordered). Steps keep the grid finite.
    spaces: ClassVar[dict[str, tuple[Dimension, ...]]] = {
        "buy": (IntRange("rsi_period", 7, 21, step=7), FloatRange("rsi_low", 20.0, 40.0, step=5.0),
                FloatRange("rsi_high", 60.0, 80.0, step=5.0), IntRange("bb_period", 14, 30, step=8),
                FloatRange("bb_dev", 1.5, 2.5, step=0.5)),
        "sell": (IntRange("time_stop_bars", 30, 120, step=30), Categorical("breakeven", (True, False))),
        "stoploss": (FloatRange("atr_multiplier", 1.0, 3.0, step=0.5),
                     FloatRange("min_stop_distance", 0.003, 0.009, step=0.002)),
        "roi": (FloatRange("tp_moves[0]", 0.005, 0.01, step=0.0025), FloatRange("tp_moves[1]", 0.015, 0.03, step=0.005),
                FloatRange("tp_moves[2]", 0.04, 0.10, step=0.02)),
    }

    @classmethod
    def compute_indicators(cls, candles: Candles, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        c = np.ascontiguousarray(candles.close, dtype="float64")
        h = np.ascontiguousarray(candles.high, dtype="float64")
        lo = np.ascontiguousarray(candles.low, dtype="float64")
        rsi = talib.RSI(c, timeperiod=int(params["rsi_period"]))
        upper, _mid, lower = talib.BBANDS(c, timeperiod=int(params["bb_period"]), nbdevup=params["bb_dev"],
                                          nbdevdn=params["bb_dev"])
        atr = talib.ATR(h, lo, c, timeperiod=int(params["atr_period"]))
        sig = rsi_bollinger_signal(c, rsi, upper, lower, params["rsi_low"], params["rsi_high"])
        return {"rsi": rsi, "bb_upper": upper, "bb_lower": lower, "atr": atr, "signal": sig}

    @classmethod
    def warmup_bars(cls, params: Mapping[str, Any]) -> int:
        return max(int(params["rsi_period"]), int(params["bb_period"]), int(params["atr_period"])) + 1

    def start(self) -> None:
        self._st = {d: _PairState() for d in self.datas}
        self.risk = strategy_book(self)
        self._superseded: set[int] = set()  # refs of stops replaced by a new one (break-even, trailing)

    def next(self) -> None:
        risk = self.risk
        risk.see_wallet(self.account.wallet_balance())  # the drawdown rule's peak follows every bar
        for d in self.datas:
            # The bar's close time (feed datetime is the open): the risk rules' clock and hourly closes.
            risk.observe(d._name, int(round((d.datetime[0] - _EPOCH_DAYS) * _MS_PER_DAY)) + d._compression * 60_000,
                         d.close[0])
            st = self._st[d]
            size = self.getposition(d).size
            if size:
                st.held += 1
                if st.held >= self.p.time_stop_bars and not st.exiting:
                    st.exiting = True
                    self.close_position(d, tag="time_stop")
                elif st.trailing and not st.exiting:
                    self._trail(d, st)
                continue
            if st.entry is not None:
                continue
            sig = d.signal[0]
            if sig == 0.0:
                continue
            self._enter(d, 1 if sig > 0 else -1)

    def _enter(self, d: bt.DataBase, side: int) -> None:
        acct = self.account
        spec = acct.instrument(d)
        ref = d.close[0]  # the decision price; the fill is the next bar's open
        dist = stop_distance(acct.leverage, d.atr[0], ref, self.p.atr_multiplier, self.p.stop_leverage_factor)
        dist = max(dist, min(self.p.min_stop_distance, self.p.stop_leverage_factor / acct.leverage))
        if not getattr(d, "bar_is_live", True):
            return  # live, a historical bar's entry would be refused (live orders follow live bars): no decision
        wallet = acct.wallet_balance()
        vol, regime = self.risk_context(d)
        size, _decision = size_entry(self.risk, wallet, acct.available_balance(), d._name, side, ref, dist, spec,
                                     acct.leverage, self.p.risk_per_trade * acct.risk_scale(), self.p.taker_fee,
                                     vol, regime)
        if size.qty <= 0:
            return
        stop = ref * (1 - side * dist)
        tps = [(ref * (1 + side * m), q) for m, q in
               zip(self.p.tp_moves, split_take_profits(size.qty, self.p.tp_shares, spec), strict=True)]
        st = self._st[d]
        st.entry, st.stop, st.tps = self.open_position(d, side, size.qty, stop, tps)
        st.side = side
        st.held = 0
        st.exiting = False
        st.risk = size.qty * ref * dist / wallet
        st.stop_price = spec.round_price(stop)
        st.trailing = False
        st.realized = 0.0

    def risk_context(self, d: bt.DataBase) -> tuple[float, str]:
        """(ATR/price percentile rank, market regime) for the risk rules; this strategy reads no regime."""
        return vol_rank(d.atr, d.close, int(self.p.volatility_window)), "unknown"

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        d = order.data
        st = self._st[d]
        tag = order.info.get("tag")
        if order is st.entry or (st.entry is not None and order.ref == st.entry.ref):
            if order.status == order.Completed:
                st.entry_price = order.executed.price
            elif not order.alive():
                st.entry = None
                st.risk = 0.0
                self.risk.cancelled(d._name)
            return
        if order.ref in self._superseded:
            self._superseded.discard(order.ref)
            if order.status != order.Completed:
                # A replaced stop's cancellation (told at the next bar's start, perhaps after the new stop filled):
                # the position's end is told by its own orders, with the P&L of every fill (the loss streak).
                return
        if order.status == order.Completed and st.entry_price:
            st.realized += (order.executed.price - st.entry_price) * st.side * abs(order.executed.size)
        if tag == "tp1" and order.status == order.Completed:
            if self.p.breakeven:
                self._move_stop_to_breakeven(d, st)
            st.trailing = self.p.trail_atr_multiplier > 0
        if not self.getposition(d).size and not order.alive():
            # Flat again (stop, last target, time stop or liquidation): ready for the next signal.
            if st.entry is not None or d._name in self.risk.open:  # a forced entry's P&L is not followed: 0
                self.risk.closed(d._name, st.realized if st.entry is not None else 0.0,
                                 self.account.wallet_balance())
            st.entry = st.stop = None
            st.tps = []
            st.held = 0
            st.exiting = False
            st.risk = 0.0
            st.trailing = False

    def _move_stop_to_breakeven(self, d: bt.DataBase, st: _PairState) -> None:
        pos = self.getposition(d)
        if not pos.size or st.stop is None:
            return
        spec = self.account.instrument(d)
        side = 1 if pos.size > 0 else -1
        # Break-even plus the round-trip taker fees, so a stop-out here is not a loss after costs.
        be = spec.round_price(st.entry_price * (1 + side * 2 * self.p.taker_fee))
        self._replace_stop(d, st, be, "stop_breakeven")

    def _trail(self, d: bt.DataBase, st: _PairState) -> None:
        pos = self.getposition(d)
        atr = d.atr[0]
        if not pos.size or st.stop is None or not math.isfinite(atr) or atr <= 0:
            return
        side = 1 if pos.size > 0 else -1
        spec = self.account.instrument(d)
        candidate = spec.round_price(d.close[0] - side * self.p.trail_atr_multiplier * atr)
        # Only tighten, and only by a meaningful step: every move is a cancel and a new order on the exchange.
        if side * (candidate - st.stop_price) > self.p.trail_min_step * d.close[0]:
            self._replace_stop(d, st, candidate, "stop_trail")

    def _replace_stop(self, d: bt.DataBase, st: _PairState, price: float, tag: str) -> None:
        pos = self.getposition(d)
        side = 1 if pos.size > 0 else -1
        self._superseded.add(st.stop.ref)
        self.cancel(st.stop)
        leave = self.sell if side > 0 else self.buy
        st.stop = leave(data=d, size=abs(pos.size), exectype=bt.Order.Stop, price=price, close_position=True,
                        tag=tag)
        st.stop_price = price


STRATEGIES: dict[str, type[FuturesStrategy]] = {"rsi_bollinger": RsiBollingerStrategy}

# Issue 13's strategy layer (imported here, at the end, so the registry holds them wherever it is read).
from trader.strategy.master import MasterStrategy  # noqa: E402
from trader.strategy.strategies import BreakoutStrategy, OscillationStrategy, TrendStrategy  # noqa: E402

STRATEGIES.update(oscillation=OscillationStrategy, breakout=BreakoutStrategy, trend=TrendStrategy,
                  master=MasterStrategy)
