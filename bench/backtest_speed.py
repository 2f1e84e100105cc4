"""Backtest speed: the whole ``bsmart backtest`` command (start-up, imports, loading, the Backtrader run, Monte Carlo,
export, the database row), against its references, on the same strategy and data.

Issue 16's target: at least 1.3× faster than freqtrade's whole ``backtesting`` command on the same strategy and data,
at most half its peak RSS. freqtrade is not installed here; the issue measured, side by side on this machine, the
project at 0.99× freqtrade's wall time on 41,760 real 1m bars and 1.07× on 1,000,000 stitched bars, at 0.58× its
memory. With ``--baseline DIR`` (a source tree of the commit the issue measured, e.g.
``git archive 3e2f465 | tar -x -C DIR``) the same command runs from that tree too, alternating with this one, and the
freqtrade figures are derived from it by those ratios — so every figure is printed beside its reference from the
same run. Without ``--baseline`` only this tree's figures and the ratios are printed.

Sizes: the shipped BTC 1m month cut to 41,760 bars (2025-05-05 → 2025-06-03), and ``--bars`` stitched real 1m
candles (../shared/data's BTC, ETH, SOL, BNB, XRP, DOGE stretches laid end to end, each scaled to open where the
previous closed, renumbered to one unbroken minute series), written to a temporary candle store. Each command runs as
a child process (wall clock, CPU = user + system, peak RSS from ``wait4``); medians of ``--repeat``.

    .venv/bin/python bench/backtest_speed.py [--bars 1000000] [--repeat 3] [--baseline DIR] [--numpy]

``--numpy`` adds the earlier in-process figure: the engine's bars/s beside a plain numpy pass of the same signals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trader.data.store import candle_path, load_candles, split_on_gaps

PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT", "DOGE/USDT:USDT"]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "futures"
ROOT = Path(__file__).resolve().parents[1]
T0 = 1_577_836_800_000  # 2020-01-01T00:00Z, only a label for the renumbered minutes
# Issue 16's side-by-side measurement: project / freqtrade.
ISSUE_WALL_RATIO = {"real": 0.99, "stitched": 1.07}
ISSUE_RSS_RATIO = 0.58


def stitched_bars(data_dir: Path, n: int) -> pd.DataFrame:
    stretches = []
    for pair in PAIRS:
        df = load_candles(data_dir, pair, "1m")
        stretches += [s for s in split_on_gaps(df, "1m") if len(s) >= 1_000]
    parts, total, k, level = [], 0, 0, None
    while total < n:
        s = stretches[k % len(stretches)]
        k += 1
        px = s[["open", "high", "low", "close"]].to_numpy(dtype="float64")
        scale = 1.0 if level is None else level / px[0, 0]
        px = px * scale
        level = px[-1, 3]
        take = min(len(px), n - total)
        parts.append((px[:take], s["volume"].to_numpy(dtype="float64")[:take]))
        total += take
    px = np.concatenate([p for p, _ in parts])
    vol = np.concatenate([v for _, v in parts])
    return pd.DataFrame({"timestamp": T0 + 60_000 * np.arange(n, dtype="int64"), "open": px[:, 0],
                         "high": px[:, 1], "low": px[:, 2], "close": px[:, 3], "volume": vol})


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    out: str


def run_command(src: Path, argv: list[str], cwd: Path) -> Run:
    """``bsmart <argv>`` from the source tree ``src`` as a child process; its own wall, CPU and peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"bsmart {' '.join(argv)} from {src} failed ({proc.returncode}):\n{out[-3000:]}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out)


def trades_line(out: str) -> str:
    for line in out.splitlines():
        if line.startswith("trades"):
            return " ".join(line.split()[1:])
    return "?"


def compare(label: str, kind: str, argv: list[str], args: argparse.Namespace, work: Path) -> None:
    trees = {"this tree": ROOT}
    if args.baseline:
        trees["baseline"] = args.baseline
    runs: dict[str, list[Run]] = {k: [] for k in trees}
    for _ in range(args.repeat):
        for name, src in trees.items():  # alternating, so load on the shared machine hits both alike
            runs[name].append(run_command(src, argv, work))
    med = {k: Run(statistics.median(r.wall_s for r in v), statistics.median(r.cpu_s for r in v),
                  statistics.median(r.rss_mb for r in v), v[-1].out) for k, v in runs.items()}
    print(f"{label}: bsmart {' '.join(argv)}")
    for name, m in med.items():
        print(f"  {name:9s}: wall {m.wall_s:6.2f} s  CPU {m.cpu_s:6.2f} s  peak RSS {m.rss_mb:6.0f} MB  "
              f"(trades {trades_line(m.out)}; walls {', '.join(f'{r.wall_s:.2f}' for r in runs[name])})")
    if "baseline" in med:
        b, t = med["baseline"], med["this tree"]
        same = trades_line(b.out) == trades_line(t.out)
        ft_wall, ft_cpu = b.wall_s / ISSUE_WALL_RATIO[kind], b.cpu_s / ISSUE_WALL_RATIO[kind]
        ft_rss = b.rss_mb / ISSUE_RSS_RATIO
        print(f"  speed-up over the baseline: wall {b.wall_s / t.wall_s:.2f}x, CPU {b.cpu_s / t.cpu_s:.2f}x; "
              f"RSS {t.rss_mb / b.rss_mb:.2f}x; same trades line: {same}")
        print(f"  freqtrade (derived: baseline / {ISSUE_WALL_RATIO[kind]} wall, / {ISSUE_RSS_RATIO} RSS): wall "
              f"{ft_wall:.2f} s, CPU {ft_cpu:.2f} s, RSS {ft_rss:.0f} MB")
        print(f"  target wall <= freqtrade / 1.3 = {ft_wall / 1.3:.2f} s: {t.wall_s:.2f} s "
              f"({'met' if t.wall_s <= ft_wall / 1.3 else 'NOT met'}; by CPU {t.cpu_s:.2f} <= {ft_cpu / 1.3:.2f} s: "
              f"{'met' if t.cpu_s <= ft_cpu / 1.3 else 'NOT met'}); target RSS <= freqtrade / 2 = {ft_rss / 2:.0f} MB:"
              f" {t.rss_mb:.0f} MB ({'met' if t.rss_mb <= ft_rss / 2 else 'NOT met'})")


def numpy_figures(n: int, data: Path, risk: float) -> None:
    from trader.backtest.runner import BacktestRequest, run_backtest
    from trader.strategy.base import Candles
    from trader.strategy.reference import RsiBollingerStrategy

    t0 = time.perf_counter()
    df = stitched_bars(data, n)
    res = run_backtest(BacktestRequest(pairs=("BTC/USDT:USDT",), candles={"BTC/USDT:USDT": df}, use_mark=False,
                                       use_funding=False, strategy_params={"risk_per_trade": risk}))
    t_engine = time.perf_counter() - t0
    t1 = time.perf_counter()
    params = RsiBollingerStrategy.param_values()
    c = Candles(*(df[k].to_numpy(dtype="float64") for k in ("timestamp", "open", "high", "low", "close", "volume")))
    sig = RsiBollingerStrategy.compute_indicators(c, params)["signal"]
    t_numpy = time.perf_counter() - t1
    print(f"in process, {n:,} stitched bars: engine {n / t_engine:,.0f} bars/s ({len(res.trades):,} trades), numpy pass "
          f"of the same signals {n / t_numpy:,.0f} bars/s ({int(np.count_nonzero(sig)):,} signal bars): "
          f"ratio {t_engine / t_numpy:,.0f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="source tree of an earlier commit to run beside this one")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-stitched", action="store_true")
    ap.add_argument("--numpy", action="store_true")
    # Small risk keeps the account alive over the stitched series, so the engine keeps trading (a drained account
    # stops trading and makes the bench look faster than it is).
    ap.add_argument("--risk", type=float, default=0.002)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (a shared 2-core machine: compare alternating runs, not days)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        common = ["--strategy", "rsi_bollinger", "--pairs", "BTC/USDT:USDT", "--export", str(work / "exports")]
        if not args.skip_real:
            compare("41,760 real 1m bars", "real", ["backtest", *common, "--timerange", "20250505-20250603"],
                    args, work)
        if not args.skip_stitched:
            store = work / "store"
            path = candle_path(store, "BTC/USDT:USDT", "1m")
            path.parent.mkdir(parents=True, exist_ok=True)
            stitched_bars(args.data, args.bars).to_parquet(path, index=False)
            config = work / "config.json"
            config.write_text(json.dumps({"risk": {"risk_per_trade": float(args.risk)}}))
            compare(f"{args.bars:,} stitched real 1m bars", "stitched",
                    ["backtest", *common, "--datadir", str(store), "-c", str(config)], args, work)
    if args.numpy:
        numpy_figures(args.bars, args.data, args.risk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
