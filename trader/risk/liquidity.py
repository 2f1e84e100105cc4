"""Liquidity tiers (risk-rules.md, "Liquidity tiers"): how thin a pair's market is, and what that allows.

The threshold: the quote notional resting within ±``depth_band`` of mid must reach ``depth_share_of_volume`` × the
24 h quote volume (the specification's "0.1 % of market cap" is not something the exchange publishes), and the
spread must stay at or under ``max_spread``. ``health`` is the worse of the two ratios (depth ÷ required, max
spread ÷ spread): 1 at the threshold, below 1 thinner. The warning levels are fractions of the threshold
(``levels``, default 0.8 / 0.5 / 0.2):

    health < 0.8 → mild      entries at 50 % size
    health < 0.5 → moderate  reduce-only: no new entries, exits as usual
    health < 0.2 → severe    no entries, and open positions are closed in stages

Live, the numbers come from the local order book (trader.exchange.orderbook; in dry-run the simulator's book).
A backtest has no book: ``assess_candles`` reads candle volume instead — the last hour's quote volume against the
trailing 24 h hourly average (the share cancels out: depth is assumed to scale with the traded volume), and no
spread test — and the backtest says so in its assumptions (``CANDLE_ASSUMPTION``).

A tier rises at once and falls only after it has been lower for ``hold_s`` (``TierTracker``), so one quiet
snapshot does not flip entries on and off.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

CANDLE_ASSUMPTION = ("liquidity tiers from candle volume (the last hour's quote volume against the trailing 24 h "
                     "hourly average), not from an order book; no spread test")


class Tier(enum.IntEnum):
    NORMAL = 0
    MILD = 1
    MODERATE = 2
    SEVERE = 3

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class LiquidityRules:
    max_spread: float = 0.005
    depth_band: float = 0.005
    depth_share_of_volume: float = 0.001
    levels: tuple[float, float, float] = (0.8, 0.5, 0.2)  # mild, moderate, severe: fractions of the threshold
    mild_size: float = 0.5  # entries' size multiplier in the mild tier
    hold_s: float = 60.0

    def __post_init__(self) -> None:
        mild, moderate, severe = self.levels
        if not 1 >= mild > moderate > severe > 0:
            raise ValueError(f"liquidity levels must descend within (0, 1]: {self.levels}")

    @classmethod
    def from_config(cls, cfg: Any) -> LiquidityRules:
        """From ``settings.risk.liquidity`` (trader.config.schema.LiquidityConfig)."""
        return cls(max_spread=cfg.max_spread, depth_band=cfg.depth_band,
                   depth_share_of_volume=cfg.depth_share_of_volume, levels=tuple(cfg.levels),  # type: ignore[arg-type]
                   mild_size=cfg.mild_size, hold_s=float(cfg.hold_seconds))

    def tier(self, health: float) -> Tier:
        mild, moderate, severe = self.levels
        if not math.isfinite(health):
            return Tier.NORMAL if health > 0 else Tier.SEVERE
        if health < severe:
            return Tier.SEVERE
        if health < moderate:
            return Tier.MODERATE
        if health < mild:
            return Tier.MILD
        return Tier.NORMAL


@dataclass(frozen=True)
class LiquidityReading:
    """One pair's liquidity and what it allows, with the numbers that decided it."""

    pair: str
    tier: Tier
    health: float  # min(depth / required, max_spread / spread); 1 = at the threshold
    depth: float  # quote notional within the band (backtest: the candle proxy)
    required: float
    spread: float | None  # relative, None without a book
    source: str  # book | candles
    size_multiplier: float
    entries_allowed: bool
    close_positions: bool

    @property
    def reason(self) -> str:
        """The rule and its numbers, in the words the events and logs carry."""
        parts = [f"liquidity {self.tier.word}: depth {self.depth:,.0f} of {self.required:,.0f} USDT required"]
        if self.spread is not None:
            parts.append(f"spread {self.spread:.3%}")
        parts.append(f"health {self.health:.2f}")
        return ", ".join(parts) + f" ({self.source})"

    def as_dict(self) -> dict[str, Any]:
        return {"pair": self.pair, "tier": self.tier.word, "health": round(self.health, 4),
                "depth": round(self.depth, 2), "required": round(self.required, 2),
                "spread": None if self.spread is None else round(self.spread, 6), "source": self.source,
                "size_multiplier": self.size_multiplier, "entries_allowed": self.entries_allowed,
                "close_positions": self.close_positions}


def _reading(pair: str, rules: LiquidityRules, depth: float, required: float, spread: float | None,
             source: str) -> LiquidityReading:
    depth_ratio = depth / required if required > 0 else math.inf
    spread_ratio = rules.max_spread / spread if spread is not None and spread > 0 else math.inf
    health = min(depth_ratio, spread_ratio)
    return decide(pair, rules, rules.tier(health), health, depth, required, spread, source)


def decide(pair: str, rules: LiquidityRules, tier: Tier, health: float, depth: float, required: float,
           spread: float | None, source: str) -> LiquidityReading:
    """What a tier allows (mild: ``mild_size``; moderate: reduce-only; severe: reduce-only and close)."""
    size = {Tier.NORMAL: 1.0, Tier.MILD: rules.mild_size}.get(tier, 0.0)
    return LiquidityReading(pair, tier, health, depth, required, spread, source, size,
                            entries_allowed=tier <= Tier.MILD, close_positions=tier is Tier.SEVERE)


class BookView(Protocol):
    def spread(self) -> Decimal | None: ...
    def depth_within(self, band: Decimal) -> Decimal: ...


def covered_band(book: Any, band: float) -> float:
    """How far from mid (a fraction, at most ``band``) the local book reaches on both sides. A REST snapshot has a
    limited number of levels (Binance: at most 1000; BTCUSDT's reach much less than ±0.5 %), and levels beyond it
    are known only once a diff touches them: depth is measured where the book is known, not assumed zero beyond."""
    bids, asks, mid = getattr(book, "bids", None), getattr(book, "asks", None), book.mid() if hasattr(book, "mid") else None
    if not bids or not asks or not mid:
        return band
    reach = float(min((mid - min(bids)) / mid, (max(asks) - mid) / mid))
    return max(0.0, min(band, reach))


def assess_book(pair: str, book: BookView, quote_volume_24h: float, rules: LiquidityRules) -> LiquidityReading:
    """Live: depth within the band and the spread of the local order book against the 24 h quote volume. Where
    the book does not reach the whole band, the depth within its reach is held against the same share of the
    requirement (depth taken as spread evenly over the band), so a short snapshot does not read as thin."""
    spread = book.spread()
    band = covered_band(book, rules.depth_band)
    depth = float(book.depth_within(Decimal(repr(band)))) if band > 0 else 0.0
    required = rules.depth_share_of_volume * max(quote_volume_24h, 0.0) * (band / rules.depth_band)
    return _reading(pair, rules, depth, required, float(spread) if spread is not None else math.inf, "book")


def assess_candles(pair: str, quote_volume_1h: float, quote_volume_24h: float,
                   rules: LiquidityRules) -> LiquidityReading:
    """Backtest: depth estimated as the share of the last hour's volume run-rate (× 24), required as the share of
    the trailing 24 h volume; no spread (see the module docstring)."""
    depth = rules.depth_share_of_volume * max(quote_volume_1h, 0.0) * 24
    required = rules.depth_share_of_volume * max(quote_volume_24h, 0.0)
    return _reading(pair, rules, depth, required, None, "candles")


@dataclass
class TierTracker:
    """Per-pair tier with hysteresis: up at once, down after ``hold_s`` of lower readings."""

    rules: LiquidityRules
    _tier: dict[str, Tier] = field(default_factory=dict)
    _lower_since: dict[str, float] = field(default_factory=dict)

    def update(self, reading: LiquidityReading, now_s: float) -> tuple[LiquidityReading, Tier]:
        """The reading as it acts (its tier held up while the hold runs) and the previous acting tier."""
        old = self._tier.get(reading.pair, Tier.NORMAL)
        tier = reading.tier
        if tier >= old:
            self._lower_since.pop(reading.pair, None)
        else:
            since = self._lower_since.setdefault(reading.pair, now_s)
            if now_s - since < self.rules.hold_s:
                tier = old
            else:
                self._lower_since.pop(reading.pair, None)
        self._tier[reading.pair] = tier
        if tier != reading.tier:
            reading = decide(reading.pair, self.rules, tier, reading.health, reading.depth, reading.required,
                             reading.spread, reading.source)
        return reading, old

    def tier(self, pair: str) -> Tier:
        return self._tier.get(pair, Tier.NORMAL)


class CandleLiquidityGate:
    """The backtest's liquidity tiers (trader.risk.gate.MarketGate), from candle volume (``assess_candles``): at a
    decision time, the quote volume of the bars closed in the last hour against that of the last 24 hours. Until
    a pair has 24 hours of bars before the decision there is nothing to compare with and entries are allowed. No
    hysteresis and no staged close: a backtest's positions keep their stops (the live desk closes in stages)."""

    HOUR_MS = 3_600_000

    def __init__(self, frames: Any, rules: LiquidityRules, tf_ms: int) -> None:
        import numpy as np

        self.rules = rules
        self.tf_ms = tf_ms
        self._series: dict[str, tuple[Any, Any]] = {}
        for pair, df in frames.items():
            close_ms = df["timestamp"].to_numpy(dtype="int64") + tf_ms
            quote = df["volume"].to_numpy(dtype="float64") * df["close"].to_numpy(dtype="float64")
            self._series[pair] = (close_ms, np.concatenate([[0.0], np.cumsum(np.nan_to_num(quote))]))
        self.readings: dict[str, LiquidityReading] = {}  # the last reading per pair (for the result and tests)

    def _volume(self, pair: str, since_ms: int, until_ms: int) -> float:
        import numpy as np

        close_ms, cum = self._series[pair]
        lo = int(np.searchsorted(close_ms, since_ms, side="right"))
        hi = int(np.searchsorted(close_ms, until_ms, side="right"))
        return float(cum[hi] - cum[lo])

    def reading(self, pair: str, at_ms: int) -> LiquidityReading | None:
        series = self._series.get(pair)
        if series is None or at_ms - self.tf_ms < int(series[0][0]) + 24 * self.HOUR_MS - self.tf_ms:
            return None  # less than 24 h of bars before the decision
        hour = self._volume(pair, at_ms - self.HOUR_MS, at_ms)
        day = self._volume(pair, at_ms - 24 * self.HOUR_MS, at_ms)
        reading = assess_candles(pair, hour, day, self.rules)
        self.readings[pair] = reading
        return reading

    def entry(self, pair: str, at_ms: int) -> Any:
        from trader.risk.gate import ALLOW, MarketVerdict

        reading = self.reading(pair, at_ms)
        if reading is None or reading.size_multiplier >= 1:
            return ALLOW
        return MarketVerdict(reading.size_multiplier, "liquidity", reading.as_dict())
