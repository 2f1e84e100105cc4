"""Order-flow imbalance and large resting orders from an order-book snapshot; snapshots recorded to Parquet.

The input is a ``BookSnapshot`` (a frozen copy of the top of the book at one time), not the live
``LocalOrderBook``, so the same code reads the live book, a dry-run simulator book and recorded snapshots in a
backtest. Backtests get book features only where snapshots were recorded; elsewhere they are NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.config.pairs import exchange_symbol, file_stem
from trader.data.formats import write_parquet
from trader.exchange.orderbook import LocalOrderBook

Array = np.ndarray
BOOK_COLUMNS = ["timestamp", "side", "level", "price", "qty"]  # side: +1 bid, −1 ask; level 0 = best


@dataclass(frozen=True)
class BookSnapshot:
    """``bids`` best first (price descending), ``asks`` best first (ascending); each an (n, 2) float64 array of
    price, quantity (base units)."""

    ts_ms: int
    symbol: str
    bids: Array
    asks: Array

    @property
    def mid(self) -> float:
        if not len(self.bids) or not len(self.asks):
            return float("nan")
        return float(self.bids[0, 0] + self.asks[0, 0]) / 2.0


def _levels(rows: Iterable[Sequence[Any]], descending: bool, depth: int) -> Array:
    arr = np.array([(float(p), float(q)) for p, q, *_ in rows if float(q) > 0], dtype="float64").reshape(-1, 2)
    order = np.argsort(-arr[:, 0] if descending else arr[:, 0], kind="stable")
    return np.ascontiguousarray(arr[order][:depth])


def snapshot_from_book(book: LocalOrderBook, ts_ms: int, depth: int = 50) -> BookSnapshot:
    """Freeze the top ``depth`` levels of a live local book (prices and sizes become floats: analysis, not
    accounting)."""
    bids, asks = book.top(depth)
    return BookSnapshot(ts_ms, book.symbol, _levels(bids, True, depth), _levels(asks, False, depth))


def snapshot_from_depth(depth_answer: dict[str, Any], symbol: str, ts_ms: int, depth: int = 50) -> BookSnapshot:
    """From a REST depth answer (``bids``/``asks`` as [price, qty] strings), e.g. ``ExchangeClient.fetch_order_book``."""
    return BookSnapshot(ts_ms, symbol, _levels(depth_answer["bids"], True, depth),
                        _levels(depth_answer["asks"], False, depth))


@dataclass(frozen=True)
class LargeOrder:
    side: str  # "bid" | "ask"
    price: float
    qty: float
    notional: float
    distance: float  # from mid, as a fraction of mid
    multiple: float  # qty / median level qty of that side


@dataclass(frozen=True)
class OrderFlow:
    ts_ms: int
    imbalance: float  # (bid − ask) / (bid + ask) quantity over the top ``levels``: +1 all bids, −1 all asks
    weighted_imbalance: float  # the same with each level weighted by 1 / (1 + its rank): the touch matters most
    band_imbalance: float  # the same over quote notional within ±band of mid
    spread: float  # (ask − bid) / mid
    large_orders: tuple[LargeOrder, ...]

    @property
    def large_bid(self) -> bool:
        return any(o.side == "bid" for o in self.large_orders)

    @property
    def large_ask(self) -> bool:
        return any(o.side == "ask" for o in self.large_orders)


def _imb(b: float, a: float) -> float:
    return (b - a) / (b + a) if b + a > 0 else float("nan")


def order_flow(snap: BookSnapshot, levels: int = 10, band: float = 0.0025, large_multiple: float = 5.0) -> OrderFlow:
    """Imbalance and large-order detection. A level is "large" when its size is at least ``large_multiple`` times
    the median size of its side's top ``levels`` levels: a wall, relative to this book at this moment, so it needs
    no per-pair size table."""
    b, a = snap.bids[:levels], snap.asks[:levels]
    mid = snap.mid
    if not len(b) or not len(a) or not np.isfinite(mid):
        nan = float("nan")
        return OrderFlow(snap.ts_ms, nan, nan, nan, nan, ())
    w_b = 1.0 / (1.0 + np.arange(len(b)))
    w_a = 1.0 / (1.0 + np.arange(len(a)))
    lo, hi = mid * (1 - band), mid * (1 + band)
    nb = snap.bids[snap.bids[:, 0] >= lo]
    na = snap.asks[snap.asks[:, 0] <= hi]
    large: list[LargeOrder] = []
    for name, side in (("bid", b), ("ask", a)):
        med = float(np.median(side[:, 1]))
        for price, qty in side[side[:, 1] >= large_multiple * med]:
            large.append(LargeOrder(name, float(price), float(qty), float(price * qty), abs(price - mid) / mid,
                                    float(qty / med) if med > 0 else float("inf")))
    return OrderFlow(
        snap.ts_ms,
        _imb(float(b[:, 1].sum()), float(a[:, 1].sum())),
        _imb(float((b[:, 1] * w_b).sum()), float((a[:, 1] * w_a).sum())),
        _imb(float((nb[:, 0] * nb[:, 1]).sum()), float((na[:, 0] * na[:, 1]).sum())),
        float((a[0, 0] - b[0, 0]) / mid),
        tuple(large),
    )


# -- recording ----------------------------------------------------------------------------------------------------
def book_path(data_dir: Path, pair: str, day_ms: int) -> Path:
    """One file per pair and UTC day, beside the candles: ``BTC_USDT_USDT-book-20250505.parquet``."""
    day = pd.Timestamp(day_ms, unit="ms", tz="UTC").strftime("%Y%m%d")
    return Path(data_dir) / "book" / f"{file_stem(pair)}-book-{day}.parquet"


class BookRecorder:
    """Collects snapshots in memory and appends them to the day's Parquet file on ``flush`` (call it every few
    minutes: a snapshot of 20 levels a side is ~40 rows). Writes are atomic (the store's ``write_parquet``)."""

    def __init__(self, data_dir: Path, pair: str, depth: int = 20):
        self.data_dir, self.pair, self.depth = Path(data_dir), pair, depth
        self._rows: list[tuple[int, int, int, float, float]] = []

    def add(self, snap: BookSnapshot) -> None:
        for side, arr in ((1, snap.bids), (-1, snap.asks)):
            for level, (price, qty) in enumerate(arr[: self.depth]):
                self._rows.append((snap.ts_ms, side, level, float(price), float(qty)))

    def flush(self) -> list[Path]:
        if not self._rows:
            return []
        new = pd.DataFrame(self._rows, columns=BOOK_COLUMNS)
        self._rows = []
        written = []
        day = new["timestamp"] // 86_400_000
        for d, part in new.groupby(day):
            path = book_path(self.data_dir, self.pair, int(d) * 86_400_000)
            if path.exists():
                part = pd.concat([pd.read_parquet(path), part], ignore_index=True)
            part = part.drop_duplicates(["timestamp", "side", "level"], keep="last")
            write_parquet(part.sort_values(["timestamp", "side", "level"], ascending=[True, False, True]), path)
            written.append(path)
        return written


def load_book_snapshots(data_dir: Path, pair: str, start_ms: int | None = None,
                        end_ms: int | None = None) -> list[BookSnapshot]:
    """Every recorded snapshot of a pair in [start_ms, end_ms), oldest first; [] when none were recorded."""
    files = sorted((Path(data_dir) / "book").glob(f"{file_stem(pair)}-book-*.parquet"))
    if not files:
        return []
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if start_ms is not None:
        df = df[df["timestamp"] >= start_ms]
    if end_ms is not None:
        df = df[df["timestamp"] < end_ms]
    out = []
    symbol = exchange_symbol(pair)
    for ts, g in df.groupby("timestamp", sort=True):
        bids = g[g.side == 1].sort_values("level")[["price", "qty"]].to_numpy("float64")
        asks = g[g.side == -1].sort_values("level")[["price", "qty"]].to_numpy("float64")
        out.append(BookSnapshot(int(ts), symbol, np.ascontiguousarray(bids), np.ascontiguousarray(asks)))
    return out


def orderflow_series(snapshots: Sequence[BookSnapshot], grid_ms: Array, max_age_ms: int = 60_000,
                     **flow_kwargs: Any) -> dict[str, Array]:
    """Book features on a bar grid (bar close times): the latest snapshot at or before each time and no older than
    ``max_age_ms``; NaN (``has_book`` 0) elsewhere — a backtest without recordings simply has no book features."""
    n = len(grid_ms)
    keys = ("ob_imbalance", "ob_weighted_imbalance", "ob_band_imbalance", "ob_spread", "ob_large_bid", "ob_large_ask")
    out = {k: np.full(n, np.nan) for k in keys}
    out["has_book"] = np.zeros(n)
    if not snapshots:
        return out
    ts = np.array([s.ts_ms for s in snapshots], dtype="int64")
    flows = [order_flow(s, **flow_kwargs) for s in snapshots]
    cols = {
        "ob_imbalance": [f.imbalance for f in flows], "ob_weighted_imbalance": [f.weighted_imbalance for f in flows],
        "ob_band_imbalance": [f.band_imbalance for f in flows], "ob_spread": [f.spread for f in flows],
        "ob_large_bid": [float(f.large_bid) for f in flows], "ob_large_ask": [float(f.large_ask) for f in flows],
    }
    idx = np.searchsorted(ts, grid_ms, side="right") - 1
    ok = idx >= 0
    ok[ok] = (grid_ms[ok] - ts[idx[ok]]) <= max_age_ms
    for k, v in cols.items():
        out[k][ok] = np.asarray(v)[idx[ok]]
    out["has_book"] = ok.astype(float)
    return out
