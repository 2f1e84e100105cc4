"""The models seen from the running system: what is active (for /status and /models), a prediction for a pair
now (for /predict) and the adapters that let the strategies consult the predictor (``fusion.MLProvider``).

    ml_state(models_dir)                          # MLState: active models, their age, usable or why not
    live = LivePredictions(predictor, data_dir)   # fed by the live engine's own closed bars (engine.bar_observers)
    engine.bar_observers.append(live.observe); live.start(); fusion.set_ml_provider(live)
    rows = StoreRows(data_dir)                    # feature rows built from the candle store (/predict, backtests)
    provider = PredictorProvider(predictor, rows) # the same adapter over stored candles

The predictor needs the feature matrix of ``features.build_features`` — the analyzer run over 1m/5m candles with
weeks of warm-up for the 4h indicators — not the indicator lines a strategy holds for its current bar.

In a running engine ``LivePredictions`` keeps, per pair, the engine's closed feed bars (the preloaded history, then
every live bar, handed over by ``LiveEngine.bar_observers`` on the host loop — an append and a notify, nothing
more), prefixed by older stored candles where the store has them. A worker thread computes the features and the
prediction of each 5m grid bar ``eager_delay_s`` (1 s) after it closes — after the feed and the strategy are done
with that close, as the worker is a thread and shares the GIL with them — from bars closed by then only
(≈ 0.2–0.3 s a pair on 24 days of 1m candles, bench/ml_live.py), and keeps the result. The strategy asks only
at a candidate signal: it gets its decision bar's result at once when there is one, else
the worker computes that bar first and the strategy waits for it (at most ``wait_s``), and abstains (reason kept,
logged once) when it does not come or the pair is not being fed. The live strategy runs on the engine loop's
thread (trader/live/runner.py), so its wait parks the strategy and lets the loop run (streams, fills, stops)
instead of blocking the thread; the worker wakes it when a result lands. So a non-signal candle costs the strategy
nothing, and a prediction is never older than the bar being decided.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trader.ml.registry import ModelError, ModelRegistry

log = logging.getLogger(__name__)
GRID_MS = 300_000
MIN_HISTORY_MS = 86_400_000  # below a day the 4h features do not even have a bar: no prediction (warming up)
LOOKBACK_DAYS = 24.0  # candles read for one prediction: the 1h regime (a 500-bar percentile window, ≈ 21.5 days) and
# the 4h indicators warm up within it; the 4h percentile ranks (500 bars: 83 days) do not and stay imputed


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: str
    kind: str | None
    created_ms: int | None
    expires_ms: int | None
    usable: bool
    reason: str = ""  # why it is not usable
    summary: dict[str, Any] = field(default_factory=dict)  # target → out-of-sample figures

    def age_s(self, now_ms: int) -> float | None:
        return None if self.created_ms is None else max(0.0, (now_ms - int(self.created_ms)) / 1000)


@dataclass(frozen=True)
class MLState:
    active: tuple[ActiveModel, ...]
    versions: int = 0  # versions stored in the registry

    @property
    def on(self) -> bool:
        return any(m.usable for m in self.active)

    @property
    def usable(self) -> tuple[ActiveModel, ...]:
        return tuple(m for m in self.active if m.usable)


def ml_state(models_dir: Path | str, now_ms: int | None = None) -> MLState:
    """The registry's active versions with their checks (integrity, features, libraries, expiry), without
    loading any model (no XGBoost or TensorFlow import)."""
    reg = ModelRegistry(models_dir)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out = []
    try:
        active = reg.active()
        count = sum(len(reg.versions(n)) for n in reg.names())
    except (OSError, ValueError) as exc:
        log.warning("model registry unreadable: %s", exc)
        return MLState(())
    for name, version in sorted(active.items()):
        meta: dict[str, Any] = {}
        try:
            meta = reg.meta(name, version)
            reg.verify(name, version)
            expired = meta.get("expires_ms") is not None and now >= int(meta["expires_ms"])
            usable, reason = not expired, "expired" if expired else ""
        except (ModelError, OSError, ValueError) as exc:
            usable, reason = False, str(exc)
        out.append(ActiveModel(name, version, meta.get("kind"), meta.get("created_ms"), meta.get("expires_ms"),
                               usable, reason, dict(meta.get("summary") or {})))
    return MLState(tuple(out), count)


# -- feature rows ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rows:
    X: Any  # DataFrame of FEATURE_NAMES columns, oldest first
    close_ms: Any  # numpy int64, the close of each row's 5m bar


class StoreRows:
    """Feature rows for a pair up to a time, built from the candle store; the last few answers are cached (one
    decision bar asks once per pair however many strategies and setups consult the model)."""

    def __init__(self, data_dir: Path | str, lookback_days: float = LOOKBACK_DAYS, cache: int = 16):
        self.data_dir = Path(data_dir)
        self.lookback_ms = int(lookback_days * 86_400_000)
        self._cache: OrderedDict[tuple[str, int], Rows | None] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()

    def __call__(self, pair: str, at_ms: int) -> Rows | None:
        key = (pair, int(at_ms) - int(at_ms) % GRID_MS)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        rows = self._build(pair, key[1])
        with self._lock:
            self._cache[key] = rows
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return rows

    def _build(self, pair: str, end_ms: int) -> Rows | None:
        from trader.ml.training import pair_features

        try:
            fs = pair_features(self.data_dir, pair, end_ms - self.lookback_ms, end_ms)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            log.info("ML features for %s: %s", pair, exc)
            return None
        if not len(fs):
            return None
        return Rows(fs.X, fs.close_ms)


# -- predictions -------------------------------------------------------------------------------------------------
def signed_score(prediction: Any) -> float | None:
    """One number in −1..1 from a ``predictor.Prediction``: the direction models' weighted P(up) − P(down) across
    horizons when any answered, else the reversal model's P(bottom) − P(top); None when nothing answered."""
    from trader.ml.labels import BOTTOM, DOWN, TOP, UP

    probs = prediction.probabilities
    dirs = [p for t, p in probs.items() if t.startswith("dir_")]
    if dirs:
        if prediction.vote is not None:
            return float(prediction.vote.score)
        return float(sum(p[UP] - p[DOWN] for p in dirs) / len(dirs))
    if "reversal" in probs:
        p = probs["reversal"]
        return float(p[BOTTOM] - p[TOP])
    return None


class PredictorProvider:
    """``fusion.MLProvider`` over a ``Predictor``: ``predict(pair, at_ms, features)`` → ``fusion.Prediction``
    (direction and the probability of it, 0.5 + |score| / 2, so fusion's vote 2p − 1 is the signed score) or None
    (no fresh rows, or every model withheld). ``features`` (the strategy's indicator lines) is not what the models
    were trained on and is ignored; rows come from ``rows(pair, at_ms)``."""

    def __init__(self, predictor: Any, rows: Callable[[str, int], Rows | None], *,
                 max_lag_ms: int = GRID_MS, clock: Callable[[], float] = time.time):
        self.predictor = predictor
        self.rows = rows
        self.max_lag_ms = max_lag_ms
        self.clock = clock
        self.last_reason: dict[str, str] = {}
        self._told: set[tuple[str, str]] = set()

    def _abstain(self, pair: str, reason: str) -> None:
        self.last_reason[pair] = reason
        if (pair, reason[:40]) not in self._told:
            self._told.add((pair, reason[:40]))
            log.info("ML abstains for %s: %s", pair, reason)

    def predict(self, pair: str, at_ms: int, features: Mapping[str, float]) -> Any:
        from trader.strategy.fusion import Prediction as Vote

        try:
            rows = self.rows(pair, int(at_ms))
        except Exception as exc:  # a prediction must never break a decision
            self._abstain(pair, f"feature rows failed: {type(exc).__name__}: {exc}")
            return None
        if rows is None or not len(rows.close_ms):
            self._abstain(pair, "no stored candles to build features from")
            return None
        keep = rows.close_ms <= int(at_ms)
        if not keep.any():
            self._abstain(pair, "no feature row at or before the decision bar")
            return None
        X, close = rows.X[keep], rows.close_ms[keep]
        newest = int(close[-1])
        if int(at_ms) - newest > self.max_lag_ms:
            self._abstain(pair, f"stored candles end {(int(at_ms) - newest) // 60_000} min before the decision bar "
                                f"(the candle store is not being updated)")
            return None
        n = self.predictor.required_rows
        try:
            p = self.predictor.predict(X.iloc[-n:], at_ms=newest, now_ms=int(self.clock() * 1000))
        except Exception as exc:
            self._abstain(pair, f"prediction failed: {type(exc).__name__}: {exc}")
            return None
        score = signed_score(p)
        if score is None:
            self._abstain(pair, p.withheld_reason or "no model answered")
            return None
        self.last_reason.pop(pair, None)
        direction = 1 if score >= 0 else -1
        return Vote(direction, 0.5 + abs(score) / 2, ",".join(f"{k} {v}" for k, v in sorted(p.models.items())))


# -- predictions from the engine's own bars ----------------------------------------------------------------------
@dataclass(frozen=True)
class LivePrediction:
    pair: str
    close_ms: int  # the 5m grid bar it is as of (its close)
    score: float | None  # signed_score: −1 (down) … +1 (up); None when withheld
    vote: Any  # fusion.Prediction or None
    prediction: Any  # predictor.Prediction or None
    reason: str  # why withheld ("" when not)
    computed_ms: int  # wall clock when it was made
    elapsed_ms: float  # features + prediction


class _Window:
    """One pair's closed bars of one timeframe, oldest first, in arrays that grow by doubling and are trimmed to
    the lookback."""

    def __init__(self, tf_ms: int, keep: int) -> None:
        self.tf_ms, self.keep = tf_ms, keep
        self.a = np.empty((max(keep, 1) * 2, 6))
        self.n = 0
        self.prefix: Any = None  # stored candles older than the first bar (read once by the worker)
        self.prefix_read = False

    def add(self, rows: list[tuple[float, ...]]) -> None:
        last = self.a[self.n - 1, 0] if self.n else -1.0
        rows = [r for r in rows if r[0] > last]
        if not rows:
            return
        if self.n + len(rows) > len(self.a):
            live = self.a[max(0, self.n - self.keep):self.n].copy()
            self.a = np.empty((max(len(self.a), 2 * (len(live) + len(rows))), 6))
            self.a[:len(live)] = live
            self.n = len(live)
        self.a[self.n:self.n + len(rows)] = rows
        self.n += len(rows)

    @property
    def last_close(self) -> int:
        return int(self.a[self.n - 1, 0]) + self.tf_ms if self.n else -1

    def upto(self, close_ms: int, lookback_ms: int) -> np.ndarray:
        ts = self.a[:self.n, 0]
        hi = int(np.searchsorted(ts, close_ms - self.tf_ms, side="right"))
        lo = int(np.searchsorted(ts, close_ms - lookback_ms, side="left"))
        return self.a[lo:hi].copy()


class LivePredictions:
    """``fusion.MLProvider`` over a ``Predictor``, fed by the live engine's bars (see the module doc)."""

    def __init__(self, predictor: Any, data_dir: Path | str | None = None, *, lookback_days: float = LOOKBACK_DAYS,
                 wait_s: float = 2.0, clock: Callable[[], float] = time.time, keep: int = 32,
                 context: Any = None, eager_delay_s: float = 1.0):
        self.predictor = predictor
        self.context = context  # trader.ml.context.MarketContext: live funding, long/short ratio, book snapshots
        self.data_dir = Path(data_dir) if data_dir else None
        self.lookback_ms = int(lookback_days * 86_400_000)
        self.wait_s = wait_s
        self.clock = clock
        self._keep = keep
        self._cv = threading.Condition()
        self._windows: dict[str, _Window] = {}
        self._results: dict[str, OrderedDict[int, LivePrediction]] = {}
        self._eager: dict[str, int] = {}  # pair → newest grid close to compute
        self._eager_at: dict[str, float] = {}  # pair → monotonic time its eager job becomes due
        self.eager_delay_s = eager_delay_s
        self._demand: set[tuple[str, int]] = set()  # asked for by a strategy: computed first
        self._thread: threading.Thread | None = None
        self._stop = False
        self.last_reason: dict[str, str] = {}
        self._told: set[tuple[str, str]] = set()
        self.compute_ms: list[float] = []  # per prediction made (bench and tests)
        self.wait_ms: list[float] = []  # per strategy request: time the strategy waited
        self._engine: Any = None  # the engine attached: a strategy waiting on its ``runner`` gives the loop the thread

    # -- the engine side ---------------------------------------------------------------------------------------
    def attach(self, engine: Any) -> None:
        """Feed on ``engine``'s bars (``LiveEngine.bar_observers``); an engine restarted with another timeframe
        starts the windows afresh."""
        tf = int(engine.tf_ms)
        self._engine = engine
        with self._cv:
            for pair in list(self._windows):
                if self._windows[pair].tf_ms != tf:
                    del self._windows[pair]
        engine.bar_observers.append(lambda pair, bars, live: self.observe(pair, bars, live, tf))

    def observe(self, pair: str, bars: list[Any], live: bool, tf_ms: int) -> None:
        """The engine's bars (host loop thread): keep them, queue the newest closed grid bar. Cheap on purpose."""
        if not bars:
            return
        with self._cv:
            w = self._windows.get(pair)
            if w is None:
                w = self._windows[pair] = _Window(tf_ms, int(self.lookback_ms // tf_ms) + 1)
            w.add([(float(b.ts_ms), b.open, b.high, b.low, b.close, b.volume) for b in bars])
            close = w.last_close
            grid = close - close % GRID_MS
            if w.tf_ms <= GRID_MS and grid > self._eager.get(pair, -1):
                self._eager[pair] = grid
                # Not at once: the feed's and the strategy's work on this very close comes first (the worker is a
                # thread and would take the GIL from them); a strategy that asks is served at once instead.
                self._eager_at[pair] = time.monotonic() + (self.eager_delay_s if live else 0.0)
                self._cv.notify_all()

    def start(self) -> LivePredictions:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="ml-predictions", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the strategy side (Backtrader) --------------------------------------------------------------------------
    def predict(self, pair: str, at_ms: int, features: Mapping[str, float]) -> Any:
        grid = int(at_ms) - int(at_ms) % GRID_MS
        t0 = time.perf_counter()
        with self._cv:
            r = self._results.get(pair, {}).get(grid)
            if r is None:
                w = self._windows.get(pair)
                if w is None:
                    return self._abstain(pair, "the engine has not fed this pair's candles to the model")
                if w.tf_ms > GRID_MS:
                    return self._abstain(pair, f"the feed's {w.tf_ms // 60_000}m bars are coarser than the "
                                               f"models' 5m grid")
                if w.last_close < grid - w.tf_ms or self._thread is None:
                    return self._abstain(pair, f"candles end {(grid - w.last_close) // 60_000} min before the "
                                               f"decision bar")
                self._demand.add((pair, grid))
                self._cv.notify_all()
                deadline = time.monotonic() + self.wait_s
                runner = getattr(self._engine, "runner", None)
                while r is None and time.monotonic() < deadline:
                    if runner is not None and runner.in_strategy():
                        # On the engine loop's thread: park the strategy, the loop runs until the worker wakes it.
                        self._cv.release()
                        try:
                            runner.wait(deadline - time.monotonic())
                        finally:
                            self._cv.acquire()
                    else:
                        self._cv.wait(deadline - time.monotonic())
                    r = self._results.get(pair, {}).get(grid)
                self._demand.discard((pair, grid))
            self.wait_ms.append((time.perf_counter() - t0) * 1000)
        if r is None:
            return self._abstain(pair, f"the prediction for the {_hm(grid)} bar was not ready within "
                                       f"{self.wait_s:g} s")
        if r.vote is None:
            return self._abstain(pair, r.reason)
        self.last_reason.pop(pair, None)
        return r.vote

    def _abstain(self, pair: str, reason: str) -> None:
        self.last_reason[pair] = reason
        if (pair, reason[:40]) not in self._told:
            self._told.add((pair, reason[:40]))
            log.info("ML abstains for %s: %s", pair, reason)
        return None

    def latest(self, pair: str) -> LivePrediction | None:
        with self._cv:
            res = self._results.get(pair)
            return res[max(res)] if res else None  # the newest bar (a demanded older one may be computed later)

    def view(self, pair: str, now_ms: int | None = None) -> dict[str, Any] | None:
        """For /signals and /status: the newest prediction of ``pair`` as plain data."""
        r = self.latest(pair)
        if r is None:
            return None
        now = now_ms if now_ms is not None else int(self.clock() * 1000)
        p = r.prediction
        return {"at_ms": r.close_ms, "score": r.score, "reason": r.reason, "models": dict(p.models) if p else {},
                "probabilities": {k: list(v) for k, v in p.probabilities.items()} if p else {},
                "age_s": max(0.0, (now - r.computed_ms) / 1000), "elapsed_ms": round(r.elapsed_ms, 1)}

    # -- the worker ----------------------------------------------------------------------------------------------
    def _next_job(self) -> tuple[str, int] | None:
        """A strategy's request first, then the newest grid bar of each pair; never a bar the window does not
        hold yet (the strategy may ask before the host loop has handed the bar over), never one already done."""
        def ready(pair: str, grid: int) -> bool:
            w = self._windows.get(pair)
            return w is not None and w.last_close >= grid and grid not in self._results.get(pair, {})

        for pair, grid in sorted(self._demand, key=lambda j: j[1]):
            if ready(pair, grid):
                return pair, grid
        now = time.monotonic()
        for pair, grid in sorted(self._eager.items(), key=lambda kv: kv[1]):
            if ready(pair, grid) and now >= self._eager_at.get(pair, 0.0):
                return pair, grid
        return None

    def _run(self) -> None:
        while True:
            with self._cv:
                job = self._next_job()
                while job is None and not self._stop:
                    due = [t for p, t in self._eager_at.items() if self._eager.get(p, -1) not in
                           self._results.get(p, {})]
                    self._cv.wait(min(1.0, max(0.005, min(due, default=1e9) - time.monotonic())))
                    job = self._next_job()
                if self._stop:
                    return
                pair, grid = job
                w = self._windows[pair]
                rows = w.upto(grid, self.lookback_ms)
                need_prefix = not w.prefix_read
            if need_prefix:
                prefix = self._stored_prefix(pair, w.tf_ms, int(rows[0, 0]) if len(rows) else grid)
                with self._cv:
                    w.prefix, w.prefix_read = prefix, True
            try:
                result = self._compute(pair, grid, rows, w)
            except Exception as exc:  # a bad row must not end the worker: say why and go on
                log.exception("ML prediction for %s failed", pair)
                result = LivePrediction(pair, grid, None, None, None, f"prediction failed: {type(exc).__name__}: "
                                        f"{exc}", int(self.clock() * 1000), 0.0)
            with self._cv:
                res = self._results.setdefault(pair, OrderedDict())
                res[grid] = result
                res.move_to_end(grid)
                while len(res) > self._keep:
                    res.popitem(last=False)
                self._cv.notify_all()
                runner = getattr(self._engine, "runner", None)
                if runner is not None and (pair, grid) in self._demand:  # a strategy is waiting for this one
                    runner.set()

    def _stored_prefix(self, pair: str, tf_ms: int, before_ms: int) -> Any:
        """Stored candles of the feed's timeframe older than the engine's first bar (more warm-up for the 4h
        features), or None."""
        if self.data_dir is None:
            return None
        from trader.data.store import load_candles, resample

        tf = f"{tf_ms // 60_000}m"
        for src in dict.fromkeys((tf, "1m")):
            try:
                df = load_candles(self.data_dir, pair, src, start_ms=before_ms - self.lookback_ms, end_ms=before_ms)
            except (FileNotFoundError, ValueError, KeyError, OSError):
                continue
            if df.empty:
                continue
            if src != tf:
                df = resample(df, src, tf)
            df = df[df["timestamp"] < before_ms]
            return df[["timestamp", "open", "high", "low", "close", "volume"]] if len(df) else None
        return None

    def _context(self, pair: str, grid: int) -> tuple[Any, Any, list[Any]]:
        """Funding (stored settlements, then the live ones), the long/short ratio and book snapshots up to
        ``grid``; None / empty where there are none (the features are then absent, never zero)."""
        import pandas as pd

        frames = []
        if self.data_dir is not None:
            from trader.data.store import load_funding

            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, OSError):
                frames.append(load_funding(self.data_dir, pair, end_ms=grid))
        ratio, book = None, []
        if self.context is not None:
            live = self.context.funding(pair)
            if live is not None:
                frames.append(live[live["timestamp"] <= grid])
            ratio = self.context.ratio(pair)
            ratio = ratio[ratio["timestamp"] <= grid] if ratio is not None else None
            book = self.context.book(pair, grid)
        frames = [f for f in frames if len(f)]
        funding = (pd.concat(frames, ignore_index=True).drop_duplicates("timestamp", keep="last")
                   .sort_values("timestamp").reset_index(drop=True) if frames else None)
        return funding, ratio if ratio is not None and len(ratio) else None, book

    def _compute(self, pair: str, grid: int, rows: np.ndarray, w: _Window) -> LivePrediction:
        import pandas as pd

        from trader.analysis.analyzer import AnalyzerConfig, analyze
        from trader.ml.data import fill_gaps
        from trader.ml.features import build_features

        t0 = time.perf_counter()
        now = int(self.clock() * 1000)

        def withheld(reason: str) -> LivePrediction:
            return LivePrediction(pair, grid, None, None, None, reason, now, (time.perf_counter() - t0) * 1000)

        df = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
        df["timestamp"] = df["timestamp"].astype("int64")
        if w.prefix is not None:
            df = pd.concat([w.prefix[w.prefix["timestamp"] >= grid - self.lookback_ms], df], ignore_index=True)
        if df.empty:
            return withheld("no candles")
        span = grid - int(df["timestamp"].iloc[0])
        if span < MIN_HISTORY_MS:
            return withheld(f"too little history: {span / 3_600_000:.1f} h of candles, the features need "
                            f"{MIN_HISTORY_MS // 3_600_000} h (warming up)")
        tf = f"{w.tf_ms // 60_000}m"
        df = fill_gaps(df, tf)
        filled = df.loc[df["filled"], "timestamp"].to_numpy("int64")
        funding, ratio, book = self._context(pair, grid)
        analysis = analyze(pair, df.drop(columns=["filled"]), funding=funding, ratio=ratio, book=book,
                           base_timeframe=tf, config=AnalyzerConfig(), now_ms=grid)
        fs = build_features(analysis, filled)
        if not len(fs) or int(fs.close_ms[-1]) != grid:
            return withheld(f"the {_hm(grid)} grid bar is not complete in the engine's candles")
        if not fs.sample_ok[-1]:  # what training calls a sample: warmed up, no invented bar, core features known
            return withheld("the newest bar is not a usable sample yet (warming up, or a filled hole)")
        n = self.predictor.required_rows
        p = self.predictor.predict(fs.X.iloc[-n:], at_ms=grid, now_ms=now)
        score = signed_score(p)
        elapsed = (time.perf_counter() - t0) * 1000
        self.compute_ms.append(elapsed)
        if score is None:
            return LivePrediction(pair, grid, None, None, p, p.withheld_reason or "no model answered", now, elapsed)
        from trader.strategy.fusion import Prediction as Vote

        vote = Vote(1 if score >= 0 else -1, 0.5 + abs(score) / 2, ",".join(f"{k} {v}" for k, v in
                                                                         sorted(p.models.items())))
        return LivePrediction(pair, grid, score, vote, p, "", now, elapsed)


def _hm(ms: int) -> str:
    return time.strftime("%m-%d %H:%M", time.gmtime(ms / 1000))


def install_live(models_dir: Path | str, data_dir: Path | str | None, **kwargs: Any) -> LivePredictions | None:
    """Load the active models, start the prediction worker and make it the strategies' ML provider; None (and
    nothing changed) when no usable model is active. The caller attaches ``observe`` to each engine it starts
    (``engine.bar_observers``), runs ``live.context.run(client, pairs, stop)`` on the exchange client's loop (the
    live funding, long/short ratio and book snapshots) and calls ``stop`` at the end."""
    from trader.ml.predictor import Predictor
    from trader.strategy.fusion import set_ml_provider

    predictor = Predictor.load_active(models_dir)
    if predictor is None:
        return None
    from trader.ml.context import MarketContext

    kwargs.setdefault("context", MarketContext())
    live = LivePredictions(predictor, data_dir, **kwargs).start()
    set_ml_provider(live)
    log.info("ML predictions installed (from the engine's bars): %s",
             ", ".join(f"{k} {v}" for k, v in sorted(predictor.versions.items())))
    return live


def install_provider(models_dir: Path | str, data_dir: Path | str) -> PredictorProvider | None:
    """Load the active models and make them the strategies' ML provider; None (and nothing changed) when no
    usable model is active."""
    from trader.ml.predictor import Predictor
    from trader.strategy.fusion import set_ml_provider

    predictor = Predictor.load_active(models_dir)
    if predictor is None:
        return None
    provider = PredictorProvider(predictor, StoreRows(data_dir))
    set_ml_provider(provider)
    log.info("ML provider installed: %s", ", ".join(f"{k} {v}" for k, v in sorted(predictor.versions.items())))
    return provider
