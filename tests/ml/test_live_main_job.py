"""`bsmart run` (the main job, embedded simulator, dry-run) with an active model: the live predictions are
installed, every engine the control starts feeds them, the newest 5m bar of the preloaded history is predicted
at once, /signals and /predict show the engine's prediction, and the market context (funding, long/short ratio,
order book) is polled."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from bot.main_job import run_main_job
from trader.config.loader import load_settings
from trader.ml.live import LivePredictions
from trader.strategy import fusion

BTC = "BTC/USDT:USDT"
START = 1747612800000  # 2025-05-19 00:00 UTC: the simulator has two weeks of candles before it


async def _run_once(settings, action):
    stop = asyncio.Event()
    results: list[object] = []

    def on_ready(runtime, info) -> None:
        async def go() -> None:
            try:
                results.append(await action(runtime))
            finally:
                stop.set()

        asyncio.ensure_future(go())

    assert await run_main_job(settings, stop, heartbeat_s=0.1, on_ready=on_ready,
                              sim_overrides={"start_ms": START}) == 0
    return results[0]


async def test_run_with_an_active_model(write_config, tmp_path: Path, xgb_models: Path) -> None:
    user_data = tmp_path / "ud"
    shutil.copytree(xgb_models, user_data / "models")
    settings = load_settings(write_config({"metrics": {"enabled": False}, "user_data_dir": str(user_data),
                                           "strategy": "master"}), environ={})

    async def check(runtime):
        live = runtime.ml
        assert isinstance(live, LivePredictions) and fusion.get_ml_provider() is live
        engine = runtime.control.engine
        assert engine.bar_observers and runtime.control.running
        deadline = asyncio.get_running_loop().time() + 30
        while (live.latest(BTC) is None or live.context.polls < 1) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        newest = live.latest(BTC)
        assert newest is not None, live.last_reason
        engine_close = engine.feeds[BTC].last_bar_ms + engine.tf_ms
        assert engine_close - 600_000 <= newest.close_ms <= engine_close  # the engine's newest bars, no later
        assert live.context.polls >= 1 and live.context.book(BTC)
        view = await runtime.proxy.signals(BTC)
        assert view.pairs[BTC]["ml"]["at_ms"] >= newest.close_ms
        status = await runtime.proxy.status()
        assert status.ml_latest is None or status.ml_latest[0] == max(
            r.close_ms for r in (live.latest(p) for p in runtime.service.pairs) if r is not None and r.score is not None)
        predicted = await runtime.research_proxy.predict(BTC)
        assert predicted.source == "engine" or newest.prediction is None
        return newest

    newest = await _run_once(settings, check)
    print(f"\nnewest prediction: score {newest.score}, reason {newest.reason!r}, {newest.elapsed_ms:.0f} ms")
    # a prediction, or the out-of-distribution guard's reason (the engine's ≈ 8 days are short of the training
    # rows' history for the slowest features): never an error
    assert (newest.score is not None and newest.reason == "") or "distribution" in newest.reason, newest.reason
    assert fusion.get_ml_provider() is None  # uninstalled at shutdown
