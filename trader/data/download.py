"""Downloading candles, mark prices, funding rates and the long/short ratio into the store, incrementally.

Only what is missing is fetched: before the first stored candle when the range starts earlier, after the last one
otherwise. The candle still forming is never stored. Holes the exchange itself has (maintenance windows) are
reported, never filled with invented candles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from trader.data.formats import OHLCV, find_file, read_frame, write_parquet
from trader.data.ratio import RATIO_HISTORY_MS, RATIO_PAGE, ratio_path, rows_to_frame
from trader.data.store import Gap, candle_path, find_gaps, funding_path
from trader.data.timeframes import timeframe_ms

PAGE = 1000  # ccxt caps fetch_ohlcv at 1000 rows
FUNDING_PAGE = 1000

Progress = Callable[[str, int, int], None]  # label, done (ms covered), total (ms to cover)


class CandleSource(Protocol):
    async def fetch_time(self) -> int: ...

    async def fetch_ohlcv(
        self, pair: str, timeframe: str, since_ms: int | None = None, limit: int = 1000, *, mark: bool = False
    ) -> list[list[float]]: ...

    async def fetch_funding_rate_history(self, pair: str, since_ms: int | None = None, limit: int = 1000) -> list[dict]: ...


@dataclass
class DownloadResult:
    label: str
    path: Path
    added: int = 0
    total: int = 0
    gaps: list[Gap] = field(default_factory=list)


def _existing(path_stem: Path) -> pd.DataFrame | None:
    found = find_file(path_stem)
    return read_frame(found) if found else None


def _missing_ranges(existing: pd.DataFrame | None, start_ms: int, end_ms: int, step: int) -> list[tuple[int, int]]:
    if existing is None or existing.empty:
        return [(start_ms, end_ms)]
    first, last = int(existing["timestamp"].iloc[0]), int(existing["timestamp"].iloc[-1])
    ranges = []
    if start_ms < first:
        ranges.append((start_ms, min(first, end_ms)))
    if end_ms > last + step:
        ranges.append((max(start_ms, last + step), end_ms))
    return ranges


async def download_candles(
    source: CandleSource,
    data_dir: Path,
    pair: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    mark: bool = False,
    progress: Progress | None = None,
) -> DownloadResult:
    step = timeframe_ms(timeframe)
    kind = "mark" if mark else "futures"
    path = candle_path(data_dir, pair, timeframe, kind)
    label = f"{pair} {timeframe} {kind}"
    # A candle is final once its close time has passed on the exchange's clock (not ours: it may be a replay).
    end_ms = min(end_ms, (await source.fetch_time() // step) * step)
    existing = _existing(path.with_suffix(""))
    ranges = _missing_ranges(existing, start_ms, end_ms, step)
    total_span = sum(b - a for a, b in ranges) or 1
    done = 0
    frames = [] if existing is None else [existing]
    for lo, hi in ranges:
        since = lo
        while since < hi:
            rows = await source.fetch_ohlcv(pair, timeframe, since, PAGE, mark=mark)
            rows = [r for r in rows if lo <= r[0] < hi]
            if not rows:
                break
            frame = pd.DataFrame([r[: len(OHLCV)] for r in rows], columns=OHLCV[: len(rows[0][:6])])
            frames.append(frame)
            last = int(rows[-1][0])
            done += last + step - since
            since = last + step
            if progress:
                progress(label, min(done, total_span), total_span)
    if progress:
        progress(label, total_span, total_span)
    result = DownloadResult(label, path.with_suffix(".parquet"))
    if not frames:
        return result
    merged = pd.concat(frames, ignore_index=True)
    merged["timestamp"] = merged["timestamp"].astype("int64")
    if mark and "volume" in merged.columns:
        merged = merged.drop(columns=["volume"])  # mark candles carry no volume
    merged = merged.sort_values("timestamp").drop_duplicates("timestamp", keep="last").reset_index(drop=True)
    result.added = len(merged) - (0 if existing is None else len(existing))
    result.total = len(merged)
    if result.added:
        write_parquet(merged, result.path)
    window = merged[(merged.timestamp >= start_ms) & (merged.timestamp < end_ms)]
    result.gaps = find_gaps(window["timestamp"], timeframe)
    return result


async def download_funding(
    source: CandleSource,
    data_dir: Path,
    pair: str,
    start_ms: int,
    end_ms: int,
    *,
    progress: Progress | None = None,
) -> DownloadResult:
    path = funding_path(data_dir, pair)
    label = f"{pair} funding"
    existing = _existing(path.with_suffix(""))
    since = start_ms
    if existing is not None and not existing.empty and start_ms >= int(existing["timestamp"].iloc[0]):
        since = max(start_ms, int(existing["timestamp"].iloc[-1]) + 60_000)
    frames = [] if existing is None else [existing]
    span = max(end_ms - since, 1)
    while since < end_ms:
        rows = await source.fetch_funding_rate_history(pair, since, FUNDING_PAGE)
        # Binance stamps settlements a few ms after the hour; the store keeps whole minutes.
        points = [((int(r["timestamp"]) // 60_000) * 60_000, float(r["fundingRate"])) for r in rows
                  if since <= int(r["timestamp"]) < end_ms]
        if not points:
            break
        frames.append(pd.DataFrame(points, columns=["timestamp", "funding_rate"]))
        since = points[-1][0] + 60_000
        if progress:
            progress(label, min(since - start_ms, span), span)
    result = DownloadResult(label, path.with_suffix(".parquet"))
    if not frames:
        return result
    merged = pd.concat(frames, ignore_index=True).sort_values("timestamp")
    merged = merged.drop_duplicates("timestamp", keep="last").reset_index(drop=True)
    result.added = len(merged) - (0 if existing is None else len(existing))
    result.total = len(merged)
    if result.added:
        write_parquet(merged, result.path)
    return result


class RatioSource(Protocol):
    async def fetch_time(self) -> int: ...

    async def fetch_long_short_ratio(self, pair: str, period: str = "5m", since_ms: int | None = None,
                                     until_ms: int | None = None, limit: int = 500) -> list[dict]: ...


async def download_long_short_ratio(
    source: RatioSource,
    data_dir: Path,
    pair: str,
    start_ms: int,
    end_ms: int,
    *,
    period: str = "5m",
    progress: Progress | None = None,
) -> DownloadResult:
    """Binance's global long/short account ratio into ``<pair>-<period>-long_short_ratio.parquet``, incrementally.
    Binance answers only for the latest 30 days, so the start is clamped there; older rows already stored are kept
    (this is the only way to build a longer history)."""
    path = ratio_path(data_dir, pair, period)
    label = f"{pair} long/short ratio {period}"
    step = timeframe_ms(period)
    now = await source.fetch_time()
    end_ms = min(end_ms, now)
    since = max(start_ms, now - RATIO_HISTORY_MS + step)
    existing = _existing(path.with_suffix(""))
    if existing is not None and not existing.empty and since >= int(existing["timestamp"].iloc[0]):
        since = max(since, int(existing["timestamp"].iloc[-1]) + step)
    frames = [] if existing is None else [existing]
    first = since
    span = max(end_ms - first, 1)
    while since < end_ms:
        rows = await source.fetch_long_short_ratio(pair, period, since, end_ms - 1, RATIO_PAGE)
        frame = rows_to_frame(rows)
        frame = frame[(frame.timestamp >= since) & (frame.timestamp < end_ms)]
        if frame.empty:
            break
        frames.append(frame)
        since = int(frame["timestamp"].iloc[-1]) + step
        if progress:
            progress(label, min(since - first, span), span)
    result = DownloadResult(label, path)
    if not frames:
        return result
    merged = pd.concat(frames, ignore_index=True).sort_values("timestamp")
    merged = merged.drop_duplicates("timestamp", keep="last").reset_index(drop=True)
    result.added = len(merged) - (0 if existing is None else len(existing))
    result.total = len(merged)
    if result.added:
        write_parquet(merged, result.path)
    result.gaps = find_gaps(merged["timestamp"], period)
    return result


@dataclass
class RulesResult:
    paths: list[Path]
    symbols: list[str]  # exchange symbols whose exchangeInfo entry was saved
    brackets: list[str]  # exchange symbols whose leverage brackets were saved
    notes: list[str] = field(default_factory=list)


async def download_rules(client, data_dir: Path, pairs: list[str], bracket_client=None) -> RulesResult:  # noqa: ANN001
    """Save today's exchange rules for ``pairs`` beside the candles (``trader.model.rules``): their exchangeInfo
    entries, and their ``GET /fapi/v1/leverageBracket`` rows through ``bracket_client`` (the endpoint is USER_DATA:
    it needs API keys; without them only the filters are saved, and the result says so)."""
    from trader.config.pairs import exchange_symbol
    from trader.model.rules import save_snapshot

    info = await client.fetch_exchange_info()
    server_ms = int(info.get("serverTime") or await client.fetch_time())
    wanted = {exchange_symbol(p) for p in pairs}
    symbols = [s for s in info.get("symbols", ()) if s.get("symbol") in wanted]
    notes = [f"{s}: not listed in exchangeInfo" for s in sorted(wanted - {s["symbol"] for s in symbols})]
    brackets: list[dict] = []
    if bracket_client is None:
        notes.append("leverage brackets not saved: they need API keys (exchange.key / exchange.secret)")
    else:
        try:
            raw = await bracket_client.fetch_leverage_bracket_rows()
        except Exception as exc:  # noqa: BLE001 - the filters are still worth keeping
            notes.append(f"leverage brackets not saved: {exc}")
        else:
            brackets = [i for i in raw if i.get("symbol") in wanted and i.get("brackets")]
    source = f"{client.options.api_url or 'https://fapi.binance.com'} via bsmart download"
    paths = save_snapshot(data_dir, server_ms, symbols=symbols, brackets=brackets, source=source)
    return RulesResult(paths, sorted(s["symbol"] for s in symbols), sorted(b["symbol"] for b in brackets), notes)
