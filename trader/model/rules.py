"""Dated snapshots of the exchange's rules, beside the candles, and the choice of one for a run.

Two files per day in a candle directory, each in Binance's own shape plus a ``_source`` note:

- ``exchange_info-YYYYMMDD.json``: ``{"serverTime", "symbols": [exchangeInfo symbol entries]}``
- ``leverage_bracket-YYYYMMDD.json``: ``{"serverTime", "brackets": [GET /fapi/v1/leverageBracket items]}``

``bsmart download`` writes them (merging symbols into the day's file); the package ships them for its sample pairs
in the bundled data directory. A backtest takes, per pair and per source, the snapshot nearest its range in the run's
data directory, falling back to the bundled snapshot (and saying so); a pair neither has is refused, naming what is
missing, never given invented filters.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader.model.instruments import InstrumentSpec, MissingRules, spec_from_exchange

INFO_PREFIX = "exchange_info"
BRACKET_PREFIX = "leverage_bracket"
_NAME = re.compile(r"^(exchange_info|leverage_bracket)-(\d{8})\.json$")
DAY_MS = 86_400_000


def exchange_symbol(pair: str) -> str:
    """``BTC/USDT:USDT`` → ``BTCUSDT``."""
    base, rest = pair.split("/", 1)
    return base + rest.split(":", 1)[0]


def bundled_rules_dir() -> Path:
    from trader.data.store import bundled_data_dir  # the candle store owns where the bundled data lives

    return bundled_data_dir()


def _day_ms(stamp: str) -> int:
    d = dt.datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000)


def _stamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y%m%d")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Found:
    """One source's data for one symbol, and where it came from."""

    day_ms: int
    path: Path
    data: Any  # the exchangeInfo entry (dict) or the bracket rows (list)

    @property
    def label(self) -> str:
        return f"{self.path.name} ({_iso(self.day_ms)})"


@dataclass
class RuleBook:
    """Every snapshot in one directory: per source, per symbol, the days it was saved on."""

    directory: Path
    info: dict[str, list[Found]] = field(default_factory=dict)
    brackets: dict[str, list[Found]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> RuleBook:
        directory = Path(directory)
        key = _dir_key(directory)
        with _lock:
            hit = _cache.get(str(directory))
            if hit is not None and hit[0] == key:
                return hit[1]
        book = cls(directory)
        for name, _mtime in key:
            m = _NAME.match(name)
            if m is None:
                continue
            path = directory / name
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a half-written or foreign file is not a snapshot
            day = _day_ms(m.group(2))
            if m.group(1) == INFO_PREFIX:
                for entry in doc.get("symbols", ()):
                    book.info.setdefault(entry["symbol"], []).append(Found(day, path, entry))
            else:
                for item in _bracket_items(doc):
                    book.brackets.setdefault(item["symbol"], []).append(Found(day, path, item["brackets"]))
        with _lock:
            _cache[str(directory)] = (key, book)
        return book

    def nearest(self, source: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> Found | None:
        """The snapshot of ``symbol`` closest to [start_ms, end_ms) (one inside it counts as distance 0; ties go to
        the later day); without a range, the latest."""
        found = (self.info if source == INFO_PREFIX else self.brackets).get(symbol) or []
        if not found:
            return None
        if start_ms is None and end_ms is None:
            return max(found, key=lambda f: f.day_ms)
        lo = start_ms if start_ms is not None else end_ms
        hi = end_ms if end_ms is not None else start_ms
        assert lo is not None and hi is not None

        def distance(f: Found) -> tuple[int, int]:
            d = 0 if lo - DAY_MS < f.day_ms <= hi else min(abs(f.day_ms - lo), abs(f.day_ms - hi))
            return d, -f.day_ms

        return min(found, key=distance)

    def symbols(self) -> set[str]:
        return set(self.info) | set(self.brackets)


def _bracket_items(doc: Any) -> list[Mapping[str, Any]]:
    items = doc.get("brackets", ()) if isinstance(doc, Mapping) else doc
    return [i for i in items if isinstance(i, Mapping) and "symbol" in i and i.get("brackets")]


_lock = threading.Lock()
_cache: dict[str, tuple[tuple[tuple[str, float], ...], RuleBook]] = {}


def _dir_key(directory: Path) -> tuple[tuple[str, float], ...]:
    try:
        with os.scandir(directory) as it:
            return tuple(sorted((e.name, e.stat().st_mtime) for e in it if _NAME.match(e.name)))
    except OSError:
        return ()


@dataclass(frozen=True)
class ResolvedRules:
    specs: dict[str, InstrumentSpec]
    notes: list[str]  # assumptions a report should show (fallbacks, assumed fields)


def resolve_rules(pairs: Iterable[str], data_dir: Path | None = None, start_ms: int | None = None,
                  end_ms: int | None = None) -> ResolvedRules:
    """Each pair's rules from the snapshot nearest [start_ms, end_ms) in ``data_dir``, else from the bundled
    snapshots (noted). Raises MissingRules listing every pair that has neither, and what it lacks."""
    bundled_dir = bundled_rules_dir()
    own = RuleBook.load(data_dir) if data_dir is not None else None
    bundled = RuleBook.load(bundled_dir)
    if own is not None and Path(data_dir).resolve() == bundled_dir.resolve():  # type: ignore[arg-type]
        own = None
    specs: dict[str, InstrumentSpec] = {}
    notes: list[str] = []
    problems: list[str] = []
    for pair in pairs:
        sym = exchange_symbol(pair)
        parts: dict[str, Found] = {}
        fell_back: list[str] = []
        for source, what in ((INFO_PREFIX, "exchangeInfo filters"), (BRACKET_PREFIX, "leverage brackets")):
            f = own.nearest(source, sym, start_ms, end_ms) if own is not None else None
            if f is None:
                f = bundled.nearest(source, sym, start_ms, end_ms)
                if f is not None and own is not None:
                    fell_back.append(what)
            if f is not None:
                parts[source] = f
        missing = [what for source, what in ((INFO_PREFIX, "exchangeInfo filters"),
                                             (BRACKET_PREFIX, "leverage brackets")) if source not in parts]
        if missing:
            where = f"{data_dir} or the bundled snapshots" if own is not None else "the bundled snapshots"
            problems.append(f"{pair}: no {' and no '.join(missing)} for {sym} in {where}")
            continue
        info, br = parts[INFO_PREFIX], parts[BRACKET_PREFIX]
        source = info.label if info.path == br.path else f"{info.label} + {br.label}"
        spec = spec_from_exchange(pair, info.data, br.data, source=source)
        specs[pair] = spec
        if fell_back:
            notes.append(f"{pair}: no {' or '.join(fell_back)} snapshot in {data_dir}; used the bundled "
                         f"snapshot of {_iso(min(info.day_ms, br.day_ms))}")
        if spec.assumed:
            notes.append(f"{pair}: assumed exchange rules: {', '.join(spec.assumed)}")
    if problems:
        raise MissingRules("; ".join(problems) + " — `bsmart download --pairs ...` saves the exchange's rules beside "
                           "the candles (leverage brackets need API keys)")
    return ResolvedRules(specs, notes)


def instrument(pair: str, data_dir: Path | None = None, at_ms: int | None = None) -> InstrumentSpec:
    """One pair's rules (see ``resolve_rules``); raises MissingRules when nothing is known."""
    return resolve_rules([pair], data_dir, at_ms, at_ms).specs[pair]


def raw_rules(symbol: str, data_dir: Path | None = None, at_ms: int | None = None
              ) -> tuple[Mapping[str, Any] | None, Sequence[Mapping[str, Any]] | None]:
    """The raw (exchangeInfo entry, bracket rows) of ``symbol`` nearest ``at_ms`` in ``data_dir``, else bundled —
    for the simulator, which builds its Decimal tables from the exchange's own strings."""
    books = [RuleBook.load(data_dir)] if data_dir is not None else []
    books.append(RuleBook.load(bundled_rules_dir()))
    entry = rows = None
    for book in books:
        if entry is None and (f := book.nearest(INFO_PREFIX, symbol, at_ms, at_ms)) is not None:
            entry = f.data
        if rows is None and (f := book.nearest(BRACKET_PREFIX, symbol, at_ms, at_ms)) is not None:
            rows = f.data
    return entry, rows


def save_snapshot(directory: Path, server_ms: int, *, symbols: Sequence[Mapping[str, Any]] = (),
                  brackets: Sequence[Mapping[str, Any]] = (), source: str = "") -> list[Path]:
    """Write (merge into) the day's snapshot files; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(server_ms)
    out: list[Path] = []
    for prefix, key, items in ((INFO_PREFIX, "symbols", symbols), (BRACKET_PREFIX, "brackets", brackets)):
        if not items:
            continue
        path = directory / f"{prefix}-{stamp}.json"
        merged: dict[str, Mapping[str, Any]] = {}
        if path.exists():
            try:
                merged = {i["symbol"]: i for i in json.loads(path.read_text()).get(key, ())}
            except (OSError, ValueError, AttributeError):
                merged = {}
        merged.update({i["symbol"]: i for i in items})
        doc = {"_source": source, "serverTime": int(server_ms), key: [merged[s] for s in sorted(merged)]}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)
        out.append(path)
    return out
