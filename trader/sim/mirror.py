"""A simulator whose market mirrors another exchange: dry-run on today's prices.

Dry-run orders must never reach a real matching engine, yet they should trade the market as it is now. The mirror
reads closed 1m candles and funding from an upstream exchange (Binance's public endpoints, no keys needed) and feeds
them into an embedded simulator, whose matching engine, accounting and liquidation then run on those prices.

The simulator's clock follows the upstream's closed candles: when every mirrored pair has its candle for minute M,
the clock steps to M + 1 min, so the engine receives candle M as closed, and stops and limits have seen that
minute's extremes. The simulator therefore trails the real market by at most one candle plus its delivery time.
Mark price equals the contract price in the mirror (the basis is not mirrored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from trader.config.pairs import exchange_symbol
from trader.exchange.client import ExchangeClient
from trader.exchange.streams import Candle, CandleStream, StreamOptions
from trader.sim.config import SimConfig
from trader.sim.market import MINUTE, symbol_from_rows
from trader.sim.server import SimulatorServer

log = logging.getLogger(__name__)

HISTORY_BARS = 1000  # enough for indicators to warm up and for klines requests on the simulator
FUNDING_POLL_S = 600.0


@dataclass
class MarketMirror:
    upstream: ExchangeClient
    pairs: list[str]
    sim: SimulatorServer | None = None
    stream_options: StreamOptions | None = None
    _latest: dict[str, int] = field(default_factory=dict)  # per pair: open time of the last mirrored candle
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, cfg: SimConfig) -> SimulatorServer:
        """Fetch recent history, start the simulator on it (stepped clock), then follow the upstream."""
        now = await self.upstream.fetch_time()
        last_closed = (now // MINUTE) * MINUTE - MINUTE
        data = {}
        for pair in self.pairs:
            rows = await self.upstream.fetch_ohlcv(pair, "1m", last_closed - (HISTORY_BARS - 1) * MINUTE, 1000)
            rows = [r for r in rows if int(r[0]) <= last_closed]
            funding = await self._funding(pair, last_closed - 7 * 86_400_000)
            data[exchange_symbol(pair)] = symbol_from_rows(pair, rows, funding)
            self._latest[pair] = int(rows[-1][0])
        cfg.clock_mode = "stepped"
        cfg.start_ms = min(self._latest.values()) + MINUTE
        cfg.pairs = list(self.pairs)
        self.sim = await SimulatorServer(cfg, data=data).start()
        for pair in self.pairs:
            stream = CandleStream(self.upstream, pair, self._on_candle, last_closed_ms=self._latest[pair],
                                  options=self.stream_options)
            self._tasks.append(asyncio.create_task(stream.run(self._stop)))
        self._tasks.append(asyncio.create_task(self._funding_loop()))
        return self.sim

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.sim is not None:
            await self.sim.stop()

    async def _on_candle(self, candle: Candle) -> None:
        assert self.sim is not None
        data = self.sim.data[exchange_symbol(candle.pair)]
        data.append_bars([[candle.timestamp, candle.open, candle.high, candle.low, candle.close, candle.volume]])
        self._latest[candle.pair] = max(self._latest.get(candle.pair, 0), candle.timestamp)
        # The clock may only pass a minute once every pair has its candle for it, or a pair would trade on a
        # price it does not have yet.
        target = min(self._latest.values()) + MINUTE
        now = self.sim.clock.now_ms()
        if target > now:
            self.sim.step(target - now)

    async def _funding(self, pair: str, since_ms: int) -> list[tuple[int, float]]:
        rows = await self.upstream.fetch_funding_rate_history(pair, since_ms)
        return [((int(r["timestamp"]) // MINUTE) * MINUTE, float(r["fundingRate"])) for r in rows]

    async def _funding_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), FUNDING_POLL_S)
                return
            except asyncio.TimeoutError:
                pass
            assert self.sim is not None
            for pair in self.pairs:
                data = self.sim.data[exchange_symbol(pair)]
                since = int(data.funding_ts[-1]) + MINUTE if len(data.funding_ts) else self._latest[pair] - 86_400_000
                try:
                    data.append_funding(await self._funding(pair, since))
                except Exception as exc:  # a missed poll is retried at the next one
                    log.warning("mirror funding %s: %s", pair, exc)
