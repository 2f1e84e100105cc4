"""The market analyzer: one pair, closed candles only, every timeframe, one call.

    analysis = analyze("BTC/USDT:USDT", candles_1m, funding=..., ratio=..., book=..., now_ms=...)
    snap = analysis.snapshot()            # what is known now: a flat, typed view for strategies / fusion
    analysis.frames["1h"].features["trend_dir"]   # full per-timeframe arrays for backtests and ML
    analysis.grid                                 # the multi-timeframe view on the decision grid (default 5m)

The 1m base is resampled to each timeframe with the store's epoch-aligned boundaries (incomplete buckets are
dropped, never invented). Higher-timeframe values reach the decision grid by close time (mtf.py), so nothing is
read before it was known. Every per-timeframe computation is vectorised; SuperTrend is the one Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.analysis.bars import Bars, closed_only, resample_bars, to_bars
from trader.analysis.features import FeatureParams, timeframe_features
from trader.analysis.indicators import IndicatorParams, indicator_set
from trader.analysis.mtf import align, latest_closed_index, trend_alignment
from trader.analysis.orderflow import BookSnapshot, load_book_snapshots, order_flow, orderflow_series
from trader.analysis.patterns import Detection, PatternParams, detect_patterns, pattern_signal
from trader.analysis.regime import RegimeThresholds, classify_regime, regime_series
from trader.analysis.sentiment import SentimentParams, sentiment_features
from trader.analysis.templates import TemplateMatch, TemplateParams, match_templates, template_signal
from trader.data.ratio import load_long_short_ratio
from trader.data.store import load_candles, load_funding
from trader.data.timeframes import timeframe_ms

Array = np.ndarray


@dataclass(frozen=True)
class AnalyzerConfig:
    timeframes: tuple[str, ...] = ("5m", "15m", "1h", "4h")  # short → long; trend alignment reads them in order
    grid_timeframe: str = "5m"  # the decision grid the multi-timeframe view is laid on ("1m" works too)
    pattern_timeframes: tuple[str, ...] = ("15m", "1h", "4h")
    template_timeframes: tuple[str, ...] = ("1h", "4h")  # DTW is the costly part: longer timeframes only
    regime_timeframe: str = "1h"
    pattern_hold_bars: int = 3  # a pattern stays "recent" on its timeframe for this many bars after completion
    indicators: IndicatorParams = field(default_factory=IndicatorParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    patterns: PatternParams = field(default_factory=PatternParams)
    templates: TemplateParams = field(default_factory=TemplateParams)
    sentiment: SentimentParams = field(default_factory=SentimentParams)
    regime: RegimeThresholds = field(default_factory=RegimeThresholds)
    book_max_age_ms: int = 60_000


@dataclass
class TimeframeAnalysis:
    """One timeframe: bars, the indicator set, state features, pattern detections and template matches, all
    indexed like ``bars``."""

    timeframe: str
    bars: Bars
    indicators: dict[str, Array]
    features: dict[str, Array]
    patterns: list[Detection]
    templates: list[TemplateMatch]
    regime: Array  # labels per bar (regime.py), dtype object

    def index_at(self, at_ms: int) -> int:
        """The latest bar closed by ``at_ms`` and not stale, or −1."""
        if not len(self.bars):
            return -1
        return int(latest_closed_index(np.array([at_ms]), self.bars.close_ms, timeframe_ms(self.timeframe))[0])

    def row(self, i: int) -> dict[str, float]:
        """Every indicator and feature of bar i as floats (NaN where unknown)."""
        if i < 0:
            return {k: math.nan for k in (*self.indicators, *self.features)}
        return {k: float(v[i]) for k, v in (*self.indicators.items(), *self.features.items())}

    def frame(self) -> pd.DataFrame:
        """Bars + indicators + features as one frame (for ML datasets and inspection)."""
        return pd.concat([self.bars.frame(), pd.DataFrame({**self.indicators, **self.features})
                          .drop(columns=["close"]).assign(regime=self.regime)], axis=1)


@dataclass(frozen=True)
class PatternEvent:
    timeframe: str
    kind: str
    direction: int
    completion_ms: int  # close time of the completion bar: when the pattern became known
    level: float
    source: str  # "geometry" (pivot rules) or "template" (DTW match)
    distance: float = math.nan  # template matches only


@dataclass(frozen=True)
class MarketSnapshot:
    """What is known about a pair at ``at_ms``: the interface strategies, the master/fusion layer and reports
    read. Every field is NaN/None/``unknown`` when its data is missing or still warming up — never a neutral
    zero."""

    pair: str
    at_ms: int
    trend: dict[str, float]  # timeframe → −1/0/+1
    trend_strength: dict[str, float]  # timeframe → ADX
    alignment: float  # +1/−1 all timeframes agree, 0 mixed
    alignment_score: float  # mean direction, −1..1
    divergence: float  # 1 when the shortest and the longest timeframe disagree
    volume_z: dict[str, float]
    volume_shock: dict[str, float]  # +1 abnormally high, −1 abnormally low, 0 normal
    atr_pct: dict[str, float]  # volatility percentiles 0..1
    bb_width_pct: dict[str, float]
    momentum: dict[str, dict[str, float]]  # timeframe → {rsi, stochrsi, ultosc, mfi, willr, cci, macd} centred on 0
    sentiment: dict[str, float]  # funding_rate, funding_change, funding_z, has_funding, ls_ratio, ..., has_ratio
    orderflow: dict[str, float]  # ob_imbalance, ..., has_book
    regime: str  # ranging | trending | volatile | breakout | unknown (regime_timeframe)
    regime_features: dict[str, float]
    patterns: tuple[PatternEvent, ...]  # completed within pattern_hold_bars of their timeframe before at_ms
    features: dict[str, dict[str, float]]  # timeframe → every indicator and feature of its latest closed bar


@dataclass
class MarketAnalysis:
    pair: str
    config: AnalyzerConfig
    base: Bars
    frames: dict[str, TimeframeAnalysis]
    grid: dict[str, Array]  # the decision grid: ts_ms (open), close_ms, aligned trend, sentiment, book, regime
    funding: pd.DataFrame | None = None
    ratio: pd.DataFrame | None = None
    book: Sequence[BookSnapshot] = ()

    def grid_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.grid)

    def pattern_events(self) -> list[PatternEvent]:
        out: list[PatternEvent] = []
        for tf, fa in self.frames.items():
            close = fa.bars.close_ms
            out += [PatternEvent(tf, d.kind, d.direction, int(close[d.completion_bar]), d.level, "geometry")
                    for d in fa.patterns]
            out += [PatternEvent(tf, m.name, m.direction, int(close[m.bar]), math.nan, "template", m.distance)
                    for m in fa.templates]
        return sorted(out, key=lambda e: (e.completion_ms, e.timeframe, e.kind))

    def snapshot(self, at_ms: int | None = None) -> MarketSnapshot:
        """The view at ``at_ms`` (default: the close of the last base bar)."""
        cfg = self.config
        if at_ms is None:
            at_ms = int(self.base.close_ms[-1]) if len(self.base) else 0
        rows = {tf: fa.row(fa.index_at(at_ms)) for tf, fa in self.frames.items()}
        trend = {tf: r.get("trend_dir", math.nan) for tf, r in rows.items()}
        al = trend_alignment([np.array([trend[tf]]) for tf in cfg.timeframes])
        mom_keys = ("rsi", "stochrsi", "ultosc", "mfi", "willr", "cci", "macd")
        grid = np.array([at_ms], dtype="int64")
        senti = {k: float(v[0]) for k, v in sentiment_features(grid, self.funding, self.ratio, cfg.sentiment).items()}
        flow = {k: float(v[0]) for k, v in orderflow_series(self.book, grid, cfg.book_max_age_ms).items()}
        reg_row = rows.get(cfg.regime_timeframe, {})
        reg_keys = ("adx", "trend_dir", "atr_pct", "bb_width_pct", "breakout")
        regime_features = {k: reg_row.get(k, math.nan) for k in reg_keys}
        recent = []
        for e in self.pattern_events():
            hold = cfg.pattern_hold_bars * timeframe_ms(e.timeframe)
            if e.completion_ms <= at_ms < e.completion_ms + hold + 1:
                recent.append(e)
        return MarketSnapshot(
            pair=self.pair, at_ms=int(at_ms), trend=trend,
            trend_strength={tf: r.get("adx", math.nan) for tf, r in rows.items()},
            alignment=float(al.aligned[0]), alignment_score=float(al.score[0]), divergence=float(al.divergence[0]),
            volume_z={tf: r.get("volume_z", math.nan) for tf, r in rows.items()},
            volume_shock={tf: r.get("volume_shock", math.nan) for tf, r in rows.items()},
            atr_pct={tf: r.get("atr_pct", math.nan) for tf, r in rows.items()},
            bb_width_pct={tf: r.get("bb_width_pct", math.nan) for tf, r in rows.items()},
            momentum={tf: {k: r.get(f"mom_{k}", math.nan) for k in mom_keys} for tf, r in rows.items()},
            sentiment=senti, orderflow=flow,
            regime=classify_regime(regime_features, cfg.regime), regime_features=regime_features,
            patterns=tuple(recent), features=rows,
        )


def analyze_timeframe(bars: Bars, cfg: AnalyzerConfig) -> TimeframeAnalysis:
    ind = indicator_set(bars, cfg.indicators)
    feats = timeframe_features(ind, bars.high, bars.low, bars.volume, cfg.features)
    n = len(bars)
    patterns: list[Detection] = []
    if bars.timeframe in cfg.pattern_timeframes:
        patterns = detect_patterns(bars.high, bars.low, bars.close, cfg.patterns)
    feats["pattern_bull"], feats["pattern_bear"] = pattern_signal(n, patterns, cfg.pattern_hold_bars)
    matches: list[TemplateMatch] = []
    if bars.timeframe in cfg.template_timeframes:
        matches = match_templates(bars.close, cfg.templates)
    feats["template_dir"], feats["template_distance"] = template_signal(n, matches)
    regime = regime_series({"adx": ind["adx"], **feats}, cfg.regime)
    return TimeframeAnalysis(bars.timeframe, bars, ind, feats, patterns, matches, regime)


def analyze(
    pair: str,
    candles: Any,
    *,
    funding: pd.DataFrame | None = None,
    ratio: pd.DataFrame | None = None,
    book: Sequence[BookSnapshot] = (),
    now_ms: int | None = None,
    higher: Mapping[str, Any] | None = None,
    config: AnalyzerConfig | None = None,
    base_timeframe: str = "1m",
) -> MarketAnalysis:
    """Analyse one pair.

    ``candles``: the base candles (a store frame or ``Candles``), contiguous or not (holes just leave the
    timeframes that span them without bars). ``now_ms`` drops a still-forming last candle. ``higher`` may supply
    candles of a timeframe directly (e.g. fetched 4h klines, when the 1m window is too short to build enough 4h
    bars); they are cut to ``now_ms`` as well. ``funding``/``ratio``: the store's frames or None (absent)."""
    cfg = config or AnalyzerConfig()
    base = closed_only(to_bars(candles, base_timeframe), now_ms)
    frames: dict[str, TimeframeAnalysis] = {}
    for tf in dict.fromkeys((*cfg.timeframes, cfg.grid_timeframe, cfg.regime_timeframe)):
        if higher and tf in higher:
            bars = closed_only(to_bars(higher[tf], tf), now_ms)
        else:
            bars = resample_bars(base, tf)
        frames[tf] = analyze_timeframe(bars, cfg)
    grid_bars = frames[cfg.grid_timeframe].bars
    grid = _grid(grid_bars, frames, cfg, funding, ratio, book)
    return MarketAnalysis(pair, cfg, base, frames, grid, funding, ratio, tuple(book))


def analyze_stored(data_dir: Path, pair: str, start_ms: int | None = None, end_ms: int | None = None, *,
                   config: AnalyzerConfig | None = None) -> MarketAnalysis:
    """``analyze`` on what the store holds for a pair in [start_ms, end_ms): 1m candles, funding, the long/short
    ratio of ``config.sentiment.ratio_period`` and recorded book snapshots, each only where it exists (a backtest
    without ratio or book recordings simply has those features absent)."""
    cfg = config or AnalyzerConfig()
    candles = load_candles(data_dir, pair, "1m", start_ms=start_ms, end_ms=end_ms)
    return analyze(
        pair, candles,
        funding=load_funding(data_dir, pair, end_ms=end_ms),
        ratio=load_long_short_ratio(data_dir, pair, cfg.sentiment.ratio_period, end_ms=end_ms),
        book=load_book_snapshots(data_dir, pair, start_ms, end_ms),
        config=cfg,
    )


def _grid(grid_bars: Bars, frames: dict[str, TimeframeAnalysis], cfg: AnalyzerConfig, funding: pd.DataFrame | None,
          ratio: pd.DataFrame | None, book: Sequence[BookSnapshot]) -> dict[str, Array]:
    close_ms = grid_bars.close_ms
    out: dict[str, Array] = {"ts_ms": grid_bars.ts_ms, "close_ms": close_ms, "close": grid_bars.close}
    dirs = []
    for tf in cfg.timeframes:
        fa = frames[tf]
        idx = latest_closed_index(close_ms, fa.bars.close_ms, timeframe_ms(tf))
        d = align(fa.features["trend_dir"], idx)
        dirs.append(d)
        out[f"trend_{tf}"] = d
        out[f"volume_shock_{tf}"] = align(fa.features["volume_shock"], idx)
        out[f"atr_pct_{tf}"] = align(fa.features["atr_pct"], idx)
        out[f"pattern_bull_{tf}"] = align(fa.features["pattern_bull"], idx)
        out[f"pattern_bear_{tf}"] = align(fa.features["pattern_bear"], idx)
    al = trend_alignment(dirs)
    out.update(alignment=al.aligned, alignment_score=al.score, divergence=al.divergence)
    reg = frames[cfg.regime_timeframe]
    ridx = latest_closed_index(close_ms, reg.bars.close_ms, timeframe_ms(cfg.regime_timeframe))
    labels = np.full(len(close_ms), "unknown", dtype=object)
    labels[ridx >= 0] = reg.regime[ridx[ridx >= 0]]
    out["regime"] = labels
    out.update(sentiment_features(close_ms, funding, ratio, cfg.sentiment))
    out.update(orderflow_series(book, close_ms, cfg.book_max_age_ms))
    return out


def book_features(snap: BookSnapshot, **kwargs: Any) -> dict[str, Any]:
    """Order-flow features of one live snapshot (the live engine's path, no history needed)."""
    f = order_flow(snap, **kwargs)
    return {"ob_imbalance": f.imbalance, "ob_weighted_imbalance": f.weighted_imbalance,
            "ob_band_imbalance": f.band_imbalance, "ob_spread": f.spread, "large_orders": f.large_orders}
