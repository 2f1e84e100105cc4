"""Before a backtest is queued: which candle store it reads, whether that store covers the range, and the
``bsmart download`` command that would fill the hole.

Checking here, in the caller's process, answers "no data" in milliseconds instead of after a worker spawned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trader.config.pairs import normalize_pair
from trader.data.formats import find_file, read_frame
from trader.data.store import bundled_data_dir, candle_path
from trader.data.timeframes import timeframe_ms
from trader.data.timerange import TimeRange, parse_timerange

# Binance's kline intervals a backtest can use (3d, 1w and 1M are too coarse for these strategies).
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
MAX_DAYS = 3650
DAY_MS = 86_400_000
EDGE_SLACK_MS = DAY_MS


@dataclass(frozen=True)
class Span:
    """Stored candles of one pair: first and last candle open time (UTC ms) and the file's bar size."""

    first_ms: int
    last_ms: int
    bar_ms: int

    @property
    def end_ms(self) -> int:
        return self.last_ms + self.bar_ms


@dataclass(frozen=True)
class MissingData:
    pairs: tuple[str, ...]
    timeframe: str
    timerange: str

    @property
    def command(self) -> str:
        names = ",".join(p.split("/")[0] if p.endswith("/USDT:USDT") else p for p in self.pairs)
        return f"bsmart download --pairs {names} --timeframes {self.timeframe} --timerange {self.timerange}"


def resolve_range(text: str, today: dt.date | None = None) -> TimeRange:
    """``20250504-20250603`` (also open-ended) or ``30d``: the 30 whole UTC days before today, so the range is
    a plain timerange that can be stored, shown and downloaded as is."""
    text = text.strip().lower()
    if text.endswith("d") and text[:-1].isdigit():
        days = int(text[:-1])
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be from 1 to {MAX_DAYS}, got {days}")
        today = today or dt.datetime.now(dt.UTC).date()
        end = int(dt.datetime.combine(today, dt.time(0), dt.UTC).timestamp() * 1000)
        return TimeRange(end - days * DAY_MS, end)
    return parse_timerange(text)


def span(data_dir: Path, pair: str, timeframe: str) -> Span | None:
    """What the backtest would read for ``pair`` at ``timeframe``: the native file, else the 1m base
    (the same choice as ``trader.backtest.data_prep.load_pair_candles``)."""
    native = candle_path(data_dir, pair, timeframe)
    path = native if native.exists() else find_file(candle_path(data_dir, pair, "1m").with_suffix(""))
    if path is None:
        return None
    ts = read_frame(path)["timestamp"]
    if ts.empty:
        return None
    bar = timeframe_ms(timeframe) if path == native else 60_000
    return Span(int(ts.iloc[0]), int(ts.iloc[-1]), bar)


def common_span(data_dir: Path, pairs: Sequence[str], timeframe: str) -> Span | None:
    """The stretch every pair has stored (None when one of them has nothing)."""
    spans = [span(data_dir, p, timeframe) for p in pairs]
    if not spans or any(s is None for s in spans):
        return None
    first = max(s.first_ms for s in spans if s)
    end = min(s.end_ms for s in spans if s)
    bar = max(s.bar_ms for s in spans if s)
    return Span(first, end - bar, bar) if end > first else None


def covered(found: Span | None, rng: TimeRange) -> bool:
    """Holes inside the range are the runner's business (it splits the run, listing each); the edges must be
    stored, give or take ``EDGE_SLACK_MS``: ranges are whole days, while a store starts at a listing or a first
    download and ends at the last download, both mid-day."""
    if found is None:
        return False
    start = found.first_ms if rng.start_ms is None else rng.start_ms
    end = found.end_ms if rng.end_ms is None else rng.end_ms
    if found.first_ms >= end or found.end_ms <= start:
        return False  # nothing stored inside the range at all
    return found.first_ms - start <= EDGE_SLACK_MS and end - found.end_ms <= EDGE_SLACK_MS


def choose_data_dir(configured: Path, pairs: Sequence[str], timeframe: str) -> Path:
    """The user's store when it holds every pair, else the sample shipped with the package when that does
    (a fresh install can backtest at once), else the user's store: that is where a download would go."""
    for candidate in (configured, bundled_data_dir()):
        if all(span(candidate, p, timeframe) is not None for p in pairs):
            return candidate
    return configured


def missing(data_dir: Path, pairs: Sequence[str], timeframe: str, rng: TimeRange) -> MissingData | None:
    lacking = tuple(p for p in pairs if not covered(span(data_dir, p, timeframe), rng))
    if not lacking:
        return None
    return MissingData(lacking, timeframe, str(rng))


def canonical_pairs(texts: Sequence[str], quote: str = "USDT") -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_pair(t, quote) for t in texts))


@dataclass(frozen=True)
class BacktestAsk:
    """A backtest as a person asks for it: strategy key, pairs as typed, timeframe, ``YYYYMMDD-YYYYMMDD``
    or ``<n>d``."""

    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    timerange: str
