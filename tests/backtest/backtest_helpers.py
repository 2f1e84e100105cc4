"""Helpers for driving the futures broker through Backtrader with hand-made bars and a scripted strategy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import numpy as np

from trader.backtest.broker import FuturesBroker, PairData
from trader.backtest.feeds import make_feed
from trader.backtest.slippage import SlippageModel
from trader.model.instruments import FeeSchedule
from trader.strategy.base import FuturesStrategy

T0 = 1_735_689_600_000  # 2025-01-01T00:00Z
MIN = 60_000


class Scripted(FuturesStrategy):
    """Runs ``script[bar_index](strategy, data)`` at the end of that bar and logs every order notification."""

    params = (("script", None), ("log", None))

    def next(self) -> None:
        fn = self.p.script.get(len(self.data) - 1)
        if fn is not None:
            fn(self, self.data)

    def notify_order(self, order: bt.Order) -> None:
        self.p.log.append(
            (order.getstatusname(), order.info.get("tag"), order.executed.price, order.executed.size,
             order.info.get("reject_reason"))
        )


@dataclass
class Run:
    broker: FuturesBroker
    log: list[tuple[Any, ...]] = field(default_factory=list)

    def statuses(self, tag: str) -> list[str]:
        return [s for s, t, *_ in self.log if t == tag]

    def fills(self, tag: str) -> list[tuple[float, float]]:
        return [(p, q) for s, t, p, q, _ in self.log if t == tag and s in ("Completed", "Partial")]


def run_bars(
    bars: Sequence[tuple[float, float, float, float]] | dict[str, Sequence[tuple[float, float, float, float]]],
    script: dict[int, Callable[[Scripted, bt.DataBase], Any]],
    wallet: float = 1_000.0,
    leverage: int = 25,
    fees: FeeSchedule | None = None,
    slippage: SlippageModel | None = None,
    funding: tuple[list[int], list[float], list[float]] | None = None,
    mark_ratio: float | Sequence[float] = 1.0,
    pair: str = "BTC/USDT:USDT",
    start_ms: int = T0,
) -> Run:
    """One pair (``bars`` a list) or several (``bars`` a dict pair -> list); the script gets the first feed."""
    per_pair = bars if isinstance(bars, dict) else {pair: bars}
    broker = FuturesBroker(cash=wallet, leverage=leverage, fees=fees or FeeSchedule(0.0, 0.0),
                           slippage=slippage or SlippageModel(0.0), close_at_end=False)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.setbroker(broker)
    for name, rows in per_pair.items():
        arr = np.asarray(rows, dtype="float64")
        ts = start_ms + MIN * np.arange(len(arr), dtype="int64")
        ratio = np.broadcast_to(np.asarray(mark_ratio, dtype="float64"), (len(arr),)).copy()
        f_ms, f_rate, f_mark = funding or ([], [], [])
        data = PairData(ts_ms=ts, open=arr[:, 0], high=arr[:, 1], low=arr[:, 2], close=arr[:, 3],
                        mark_ratio=ratio, funding_ms=np.asarray(f_ms, dtype="int64"),
                        funding_rate=np.asarray(f_rate, dtype="float64"),
                        funding_mark=np.asarray(f_mark, dtype="float64"))
        feed = make_feed(name, ts, {"open": arr[:, 0], "high": arr[:, 1], "low": arr[:, 2], "close": arr[:, 3]})
        cerebro.adddata(feed, name=name)
        broker.attach(name, data)
    log: list[tuple[Any, ...]] = []
    cerebro.addstrategy(Scripted, script=script, log=log)
    cerebro.run()
    return Run(broker, log)


def flat(price: float) -> tuple[float, float, float, float]:
    return (price, price, price, price)
