"""Market context for live predictions: funding settlements, Binance's long/short account ratio and order-book
snapshots, read from the exchange (or the simulator, which serves all three) while the engine runs, so the models'
sentiment and order-flow features are live rather than absent.

    context = MarketContext()
    await context.poll(client, pairs)            # once; ``run`` repeats it every ``every_s`` until stopped
    context.funding(pair), context.ratio(pair), context.book(pair)   # what ``analyze`` takes

Causality is the analyzer's: a funding row counts from its settlement time, a ratio row from its timestamp plus
Binance's publication delay (``sentiment.ratio_features``), a book snapshot from the exchange time it was taken at
and for at most 60 s (``orderflow.orderflow_series``). A snapshot is taken every poll, so a 5m grid bar has one
when polls come at least every minute; between polls the book features are absent (NaN, ``has_book`` 0), never
carried forward. A failed read is logged once per kind and pair, and the features stay absent.

With ``record_dir`` (the candle store's folder) every snapshot is also recorded (``orderflow.BookRecorder``,
``<data>/book/<pair>-book-<day>.parquet``, flushed off the loop every ``flush_every`` polls) so later backtests and
trainings have the book where it was seen. The main job records only a real market's book (live, or dry-run
mirroring Binance), never the simulator's replay book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trader.analysis.orderflow import BookRecorder, BookSnapshot, snapshot_from_depth
from trader.data.ratio import empty_ratio_frame, rows_to_frame

log = logging.getLogger(__name__)
POLL_S = 30.0
BOOK_DEPTH = 20
KEEP_SNAPSHOTS = 3000  # ≈ a day at one snapshot per 30 s
KEEP_ROWS = 20_000


class MarketContext:
    def __init__(self, record_dir: Path | str | None = None, flush_every: int = 10) -> None:
        self.record_dir = Path(record_dir) if record_dir else None
        self.flush_every = max(1, flush_every)
        self._recorders: dict[str, BookRecorder] = {}
        self._lock = threading.Lock()
        self._funding: dict[str, pd.DataFrame] = {}
        self._ratio: dict[str, pd.DataFrame] = {}
        self._book: dict[str, deque[BookSnapshot]] = {}
        self._told: set[tuple[str, str]] = set()
        self.polls = 0

    # -- reads (worker thread) ------------------------------------------------------------------------------------
    def funding(self, pair: str) -> pd.DataFrame | None:
        with self._lock:
            return self._funding.get(pair)

    def ratio(self, pair: str) -> pd.DataFrame | None:
        with self._lock:
            return self._ratio.get(pair)

    def book(self, pair: str, upto_ms: int | None = None) -> list[BookSnapshot]:
        with self._lock:
            snaps = list(self._book.get(pair, ()))
        return [s for s in snaps if upto_ms is None or s.ts_ms <= upto_ms]

    # -- polling (the engine host's loop) -------------------------------------------------------------------------
    async def poll(self, client: Any, pairs: Sequence[str]) -> None:
        """One round: new funding settlements and ratio rows since the last ones, and a book snapshot, per pair."""
        now = await client.fetch_time()
        for pair in pairs:
            await self._funding_rows(client, pair)
            await self._ratio_rows(client, pair)
            try:
                depth = await client.fetch_order_book(pair, limit=BOOK_DEPTH)
                snap = snapshot_from_depth(depth, pair, int(now), depth=BOOK_DEPTH)
                with self._lock:
                    self._book.setdefault(pair, deque(maxlen=KEEP_SNAPSHOTS)).append(snap)
                if self.record_dir is not None:
                    self._recorders.setdefault(pair, BookRecorder(self.record_dir, pair, BOOK_DEPTH)).add(snap)
            except Exception as exc:  # noqa: BLE001 — context is optional: the features stay absent
                self._failed(pair, "order book", exc)
        self.polls += 1
        if self._recorders and self.polls % self.flush_every == 0:
            await self.flush()

    async def flush(self) -> None:
        """Write the recorded snapshots (in a thread: the loop keeps serving the engine)."""
        for pair, rec in list(self._recorders.items()):
            try:
                await asyncio.to_thread(rec.flush)
            except Exception as exc:  # noqa: BLE001 — a full disk must not stop the polling
                self._failed(pair, "book recording", exc)

    async def run(self, client: Any, pairs: Sequence[str] | Callable[[], Sequence[str]], stop: asyncio.Event,
                  every_s: float = POLL_S) -> None:
        """Poll until ``stop`` (or cancellation); ``pairs`` may be a callable (the whitelist in force)."""
        while not stop.is_set():
            try:
                await self.poll(client, pairs() if callable(pairs) else pairs)
            except Exception as exc:  # noqa: BLE001 — e.g. the clock read failed: try again next round
                self._failed("*", "poll", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
        await self.flush()

    async def _funding_rows(self, client: Any, pair: str) -> None:
        old = self.funding(pair)
        since = int(old["timestamp"].iloc[-1]) + 1 if old is not None and len(old) else None
        try:
            rows = await client.fetch_funding_rate_history(pair, since_ms=since, limit=100)
        except Exception as exc:  # noqa: BLE001
            self._failed(pair, "funding", exc)
            return
        new = pd.DataFrame([(int(r["timestamp"]), float(r["fundingRate"])) for r in rows
                            if r.get("timestamp") is not None and r.get("fundingRate") is not None],
                           columns=["timestamp", "funding_rate"])
        self._merge(self._funding, pair, new)

    async def _ratio_rows(self, client: Any, pair: str) -> None:
        old = self.ratio(pair)
        since = int(old["timestamp"].iloc[-1]) + 1 if old is not None and len(old) else None
        try:
            rows = await client.fetch_long_short_ratio(pair, "5m", since_ms=since)
        except Exception as exc:  # noqa: BLE001
            self._failed(pair, "long/short ratio", exc)
            return
        self._merge(self._ratio, pair, rows_to_frame(rows) if rows else empty_ratio_frame())

    def _merge(self, store: dict[str, pd.DataFrame], pair: str, new: pd.DataFrame) -> None:
        if new.empty:
            return
        with self._lock:
            old = store.get(pair)
            df = new if old is None else pd.concat([old, new], ignore_index=True)
            df = df.drop_duplicates("timestamp", keep="last").sort_values("timestamp").tail(KEEP_ROWS)
            store[pair] = df.reset_index(drop=True)

    def _failed(self, pair: str, what: str, exc: Exception) -> None:
        if (pair, what) not in self._told:
            self._told.add((pair, what))
            log.warning("market context: %s for %s not read (%s); those features stay absent", what, pair, exc)
