"""ML inference speed and memory: single-sample latency of the GRU, LSTM and XGBoost models through the real
``Predictor`` path (columns → scaler → OOD guard → model → prior correction), p50/p99 over many calls, and the
process RSS with the models loaded.

Without --models-dir it first trains production-sized models (GRU 32 units × 24 steps, LSTM 32 × 48, XGBoost
reversal, all on the ~125 features) on the shipped data into a temporary registry (about a minute; no
evaluation folds), then measures in a fresh process so the RSS is what an engine holding them would carry.

    .venv/bin/python bench/ml_speed.py [--models-dir DIR] [--calls 2000]
Targets (issue 14): GRU ≤ 5 ms p99, XGBoost ≤ 1 ms p99, RSS ≤ 1.5 GiB with two models loaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mib() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def train(models_dir: Path) -> None:
    from trader.data.store import bundled_data_dir
    from trader.ml.registry import ModelRegistry
    from trader.ml.training import TrainConfig, build_dataset, train_models

    ds = build_dataset(bundled_data_dir(), ["BTC/USDT:USDT", "ETH/USDT:USDT"])
    cfg = TrainConfig(folds=0, epochs=2, stride=4, permutation_rows=300)
    train_models(ds, ["gru", "lstm", "xgb"], cfg, ModelRegistry(models_dir), activate="always")


def measure(models_dir: Path, names: list[str], calls: int) -> dict:
    """Runs in its own process: load only ``names`` (others deactivated in a copy of active.json)."""
    t0 = time.perf_counter()
    from trader.data.store import bundled_data_dir
    from trader.ml.predictor import Predictor
    from trader.ml.training import build_dataset

    ds = build_dataset(bundled_data_dir(), ["BTC/USDT:USDT"])
    rss_data = rss_mib()[0]
    pred = Predictor.load_active(models_dir, names=names)
    load_s = time.perf_counter() - t0
    rows = np.flatnonzero(ds.sample_ok & (ds.pos >= 60))
    rng = np.random.default_rng(0)
    need = max(int(m.meta.get("seq_len", 1)) for m in pred.models)
    out = {"models": names, "load_s": load_s, "tensorflow_imported": "tensorflow" in sys.modules}
    per = {}
    for m in pred.models:
        single = Predictor([m])
        lat = []
        for i in range(calls + 50):
            r = int(rng.choice(rows))
            window = ds.X[r - need + 1:r + 1]
            t = time.perf_counter()
            single.predict(window)
            if i >= 50:  # warm-up (tf.function trace)
                lat.append((time.perf_counter() - t) * 1000)
        a = np.asarray(lat)
        per[m.name] = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                       "max_ms": float(a.max())}
    lat = []
    for i in range(calls // 2 + 20):
        r = int(rng.choice(rows))
        t = time.perf_counter()
        pred.predict(ds.X[r - need + 1:r + 1])
        if i >= 20:
            lat.append((time.perf_counter() - t) * 1000)
    per["all (one Predictor.predict)"] = {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                                          "max_ms": float(np.max(lat))}
    rss, hwm = rss_mib()
    out.update(latency=per, rss_mib=rss, peak_rss_mib=hwm, rss_before_models_mib=rss_data)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--_measure", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure is not None:
        print(json.dumps(measure(Path(args.models_dir), args._measure, args.calls)))
        return
    tmp = None
    if args.models_dir:
        models = Path(args.models_dir)
    else:
        tmp = tempfile.TemporaryDirectory()
        models = Path(tmp.name)
        t = time.perf_counter()
        print("training GRU, LSTM and XGBoost on the shipped data ...", file=sys.stderr)
        train(models)
        print(f"  trained in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    for names in (["xgb"], ["gru", "xgb"], ["gru", "lstm"], ["gru", "lstm", "xgb"]):
        res = subprocess.run([sys.executable, __file__, "--models-dir", str(models), "--calls", str(args.calls),
                              "--_measure", *names], capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"models loaded: {'+'.join(names):<14} load {r['load_s']:5.1f} s   RSS {r['rss_mib']:7.0f} MiB "
              f"(peak {r['peak_rss_mib']:.0f}, before loading {r['rss_before_models_mib']:.0f})   "
              f"tensorflow imported: {r['tensorflow_imported']}")
        for name, s in r["latency"].items():
            print(f"    {name:<28} p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms   max {s['max_ms']:6.1f} ms")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
