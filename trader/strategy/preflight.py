"""Bad input caught before a run, each problem named: an unknown strategy or parameter, a timeframe the data lacks
(or one the strategy cannot build from it), too little contiguous history for the warm-up.

    problems = check_backtest(request)          # [] when the run can decide anything at all
    result = run_checked(request)               # PreflightError listing every problem, else run_backtest(request)
    live_requirements("master", params, "5m")  # EngineConfig.history_bars / window the live feed needs

The strategies themselves never decide on a half-warm indicator (their ``ready`` column is 0 until every timeframe
they read is warm), so a run that passes here but is short simply trades later; this module says so up front.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trader.backtest import data_prep
from trader.backtest.runner import BacktestRequest, BacktestResult, resolve_strategy, run_backtest
from trader.config.pairs import normalize_pair
from trader.data.store import bundled_data_dir, candle_path
from trader.data.timeframes import timeframe_ms
from trader.strategy.base import FuturesStrategy
from trader.strategy.multitf import TimeframeError, check_timeframes


class PreflightError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def warmup_bars(cls: type[FuturesStrategy], params: Mapping[str, Any], timeframe: str) -> int:
    fn = getattr(cls, "warmup_for", None)
    return int(fn(params, timeframe)) if fn else int(cls.warmup_bars(params))


def needed_timeframes(cls: type[FuturesStrategy], params: Mapping[str, Any]) -> dict[str, str]:
    """Role → timeframe of everything the strategy builds from its feed."""
    out: dict[str, str] = {}
    for s in getattr(cls, "setups", lambda: [])():
        sig, grade = s.timeframes(params)
        out[f"{s.name} signal"] = sig
        for i, t in enumerate(grade):
            out[f"{s.name} grading #{i + 1}"] = t
    if "regime_timeframe" in params:
        out["regime timeframe"] = str(params["regime_timeframe"])
    return out


def check_backtest(request: BacktestRequest) -> list[str]:
    try:
        cls = resolve_strategy(request.strategy)
        params = cls.param_values(request.strategy_params)
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    tf = request.timeframe
    try:
        tf_ms = timeframe_ms(tf)
    except (ValueError, KeyError) as exc:
        return [f"timeframe {tf!r}: {exc}"]
    try:
        check_timeframes(needed_timeframes(cls, params), tf_ms, cls.__name__)
    except TimeframeError as exc:
        problems.append(str(exc))
    pairs = [normalize_pair(p) for p in request.pairs]
    if not pairs:
        return [*problems, "no pairs given"]
    data_dir = Path(request.data_dir) if request.data_dir else bundled_data_dir()
    frames = {}
    for pair in pairs:
        if request.candles is not None:
            if pair not in request.candles:
                problems.append(f"{pair}: no candles supplied")
                continue
            df = request.candles[pair]
            df = df[(df["timestamp"] >= (request.start_ms or -2**62)) & (df["timestamp"] < (request.end_ms or 2**62))]
            frames[pair] = df
            continue
        if not candle_path(data_dir, pair, tf).exists() and not candle_path(data_dir, pair, "1m").exists():
            problems.append(f"{pair}: no {tf} futures candles, and no 1m candles to build them from, in {data_dir}")
            continue
        try:
            frames[pair] = data_prep.load_pair_candles(data_dir, pair, tf, request.start_ms, request.end_ms)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(f"{pair}: {exc}")
    if problems or not frames:
        return problems
    empty = [p for p, df in frames.items() if not len(df)]
    if empty:
        return [f"{', '.join(empty)}: no {tf} candles in the requested range"]
    common = data_prep.align(frames)
    ranges = data_prep.segments(common, tf)
    need = warmup_bars(cls, params, tf)
    longest = max((b - a for a, b in ranges), default=0)
    if longest < need + 2:
        tfs = sorted(set(needed_timeframes(cls, params).values()), key=timeframe_ms)
        what = f"it reads {'/'.join(tfs)} bars built from {tf}" if tfs else "its indicators"
        problems.append(
            f"too little history: the longest stretch all of {', '.join(pairs)} share without a hole has {longest} "
            f"{tf} bars; {cls.__name__} needs {need} bars of warm-up ({what}) before its first decision, plus 2 to "
            f"trade — give a longer range (≥ {(need + 2) * tf_ms / 86_400_000:.1f} days without holes)")
    return problems


def run_checked(request: BacktestRequest, progress: Callable[[float, str], None] | None = None) -> BacktestResult:
    problems = check_backtest(request)
    if problems:
        raise PreflightError(problems)
    return run_backtest(request, progress)


def live_requirements(strategy: str | type[FuturesStrategy], params: Mapping[str, Any] | None, timeframe: str,
                      ) -> dict[str, int]:
    """What ``trader.live.engine.EngineConfig`` must hold for this strategy to ever decide live: the feed keeps
    ``window`` bars and preloads ``history_bars``; both must cover the warm-up (the defaults, 1500 and 300, do not
    for the master on 5m)."""
    cls = resolve_strategy(strategy)
    p = cls.param_values(params)
    check_timeframes(needed_timeframes(cls, p), timeframe_ms(timeframe), cls.__name__)
    need = warmup_bars(cls, p, timeframe) + 10
    return {"history_bars": need, "window": need}
