"""Market-analyzer speed: bars per second of ``trader.analysis.analyzer.analyze`` on 1,000,000 real 1m bars.

The bars are real 1m futures candles from ../shared/data (BTC, ETH, SOL, BNB, XRP, DOGE), cut into contiguous
stretches and laid end to end, each scaled to open where the previous one closed and renumbered to one unbroken
minute series (as bench/backtest_speed.py does). Without ../shared/data the shipped month is tiled the same way.
Prints the whole call and its parts (resampling, indicators + features per timeframe, patterns, DTW templates).

    .venv/bin/python bench/analysis_speed.py [--bars 1000000] [--data ../shared/data/futures] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trader.analysis.analyzer import AnalyzerConfig, analyze
from trader.analysis.bars import resample_bars, to_bars
from trader.analysis.features import timeframe_features
from trader.analysis.indicators import indicator_set
from trader.analysis.patterns import detect_patterns
from trader.analysis.templates import match_templates
from trader.data.store import bundled_data_dir, load_candles, load_funding, split_on_gaps

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT", "DOGE/USDT:USDT"]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "futures"
T0 = 1_577_836_800_000  # 2020-01-01T00:00Z, only a label for the renumbered minutes


def stitched_bars(data_dir: Path, n: int) -> pd.DataFrame:
    stretches = []
    for pair in PAIRS:
        try:
            df = load_candles(data_dir, pair, "1m")
        except FileNotFoundError:
            continue
        stretches += [s for s in split_on_gaps(df, "1m") if len(s) >= 1_000]
    if not stretches:
        raise SystemExit(f"no 1m candles in {data_dir}")
    parts, total, k, level = [], 0, 0, None
    while total < n:
        s = stretches[k % len(stretches)]
        k += 1
        px = s[["open", "high", "low", "close"]].to_numpy(dtype="float64")
        scale = 1.0 if level is None else level / px[0, 0]
        take = min(len(s), n - total)
        part = pd.DataFrame(px[:take] * scale, columns=["open", "high", "low", "close"])
        part["volume"] = s["volume"].to_numpy(dtype="float64")[:take]
        parts.append(part)
        level = float(part["close"].iloc[-1])
        total += take
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "timestamp", T0 + 60_000 * np.arange(len(out), dtype="int64"))
    return out


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data_dir = args.data if args.data.exists() else bundled_data_dir()
    df = stitched_bars(data_dir, args.bars)
    funding = load_funding(bundled_data_dir(), "BTC/USDT:USDT")
    cfg = AnalyzerConfig()
    print(f"{len(df):,} 1m bars from {data_dir}; timeframes {', '.join(cfg.timeframes)}; "
          f"patterns on {', '.join(cfg.pattern_timeframes)}; templates on {', '.join(cfg.template_timeframes)}; "
          f"median of {args.repeat}")
    secs, analysis = timed(lambda: analyze("BENCH/USDT:USDT", df, funding=funding, config=cfg), args.repeat)
    print(f"analyze(): {secs:6.2f} s  {len(df) / secs:12,.0f} bars/s  "
          f"(grid {len(analysis.grid['close_ms']):,} rows, {len(analysis.pattern_events()):,} pattern events)")

    base = to_bars(df)
    for tf in cfg.timeframes:
        s_res, bars = timed(lambda tf=tf: resample_bars(base, tf), args.repeat)
        s_ind, ind = timed(lambda b=bars: indicator_set(b), args.repeat)
        s_feat, _ = timed(lambda b=bars, i=ind: timeframe_features(i, b.high, b.low, b.volume), args.repeat)
        s_pat, _ = timed(lambda b=bars: detect_patterns(b.high, b.low, b.close), 1)
        s_tpl, _ = timed(lambda b=bars: match_templates(b.close), 1)
        print(f"  {tf:>3}: {len(bars):>8,} bars  resample {s_res:5.2f} s  indicators {s_ind:5.2f} s  "
              f"features {s_feat:5.2f} s  patterns {s_pat:5.2f} s  templates {s_tpl:5.2f} s"
              f"{'' if tf in cfg.template_timeframes else ' (templates not run by default here)'}")


if __name__ == "__main__":
    main()
