"""The composition root end to end: embedded simulator, engine, service, bot and the terminal demo."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from bot.demo import run_demo
from bot.main_job import run_main_job
from trader.config.loader import load_settings
from trader.persistence.audit import Actor

ADMIN = Actor("cli", None, "admin")


async def _run_once(settings, action) -> int:
    stop = asyncio.Event()
    results: list[object] = []

    def on_ready(runtime, info) -> None:
        async def go() -> None:
            try:
                results.append(await action(runtime))
            finally:
                stop.set()

        asyncio.ensure_future(go())

    code = await run_main_job(settings, stop, heartbeat_s=0.1, on_ready=on_ready)
    assert code == 0
    return results[0]


async def test_dry_run_starts_the_engine_and_a_user_stop_survives_a_restart(write_config, tmp_path: Path) -> None:
    settings = load_settings(write_config({"metrics": {"enabled": False}, "user_data_dir": str(tmp_path / "ud")}),
                             environ={})

    async def first(runtime):
        status = await runtime.proxy.status()
        assert status.running and status.dry_run and runtime.sim is not None
        await runtime.proxy.set_leverage(ADMIN, 20)  # restarts the running engine with the new leverage
        assert runtime.control.running and runtime.control.engine.config.leverage == 20
        return await runtime.proxy.stop(ADMIN)

    stopped = await _run_once(settings, first)
    assert stopped.running is False

    async def second(runtime):
        return await runtime.proxy.status()

    again = await _run_once(settings, second)
    assert again.running is False and again.leverage == 20  # stopped by a user: stays stopped; leverage kept


async def test_demo_answers_typed_commands_and_numbered_buttons(tmp_path: Path, capfd) -> None:
    out = io.StringIO()
    source = io.StringIO("/status\n/flatten\n1\n/quit\n")
    assert await asyncio.wait_for(run_demo(tmp_path / "demo", source=source, out=out), 120) == 0
    text = out.getvalue()
    assert "Engine: running" in text
    assert "[1] ✅ Confirm" in text and "Flatten done" in text
    # The terminal is the phone: no log lines on it; they are in the demo's log files.
    terminal = text + "".join(capfd.readouterr())
    assert "httpx" not in terminal and " INFO " not in terminal
    assert "HTTP Request" in (tmp_path / "demo" / "logs" / "trading.log").read_text(encoding="utf-8")


async def test_demo_waits_for_a_slow_answer_before_quitting(tmp_path: Path, monkeypatch) -> None:
    """A piped script's /quit right after a button press must not cut the press's answer off (it did in CI)."""
    from trader.service.service import TradingService

    real = TradingService.flatten

    async def slow_flatten(self, *args, **kwargs):
        await asyncio.sleep(1.5)  # longer than any fixed pause the demo could take between lines
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(TradingService, "flatten", slow_flatten)
    out = io.StringIO()
    source = io.StringIO("/flatten\n1\n/quit\n")
    assert await asyncio.wait_for(run_demo(tmp_path / "demo", source=source, out=out), 120) == 0
    assert "Flatten done" in out.getvalue()


def test_config_risk_reaches_the_strategy(write_config) -> None:
    from bot.main_job import strategy_risk_params

    settings = load_settings(write_config({"max_open_trades": 2, "risk": {"risk_per_trade": 0.01}}), environ={})
    params = strategy_risk_params(settings)
    assert params["max_open_trades"] == 2 and params["risk_per_trade"] == 0.01
    assert params["tp_moves"] == (0.008, 0.02, 0.05) and params["tp_shares"] == (0.3, 0.3, 0.4)


async def test_the_master_runs_live_with_its_warm_up_and_fusion_book(write_config, tmp_path: Path) -> None:
    from trader.strategy.preflight import live_requirements

    user_data = tmp_path / "ud"
    settings = load_settings(write_config({"metrics": {"enabled": False}, "user_data_dir": str(user_data),
                                           "strategy": "master"}), environ={})

    async def first(runtime):
        config = runtime.control.engine.config
        need = live_requirements("master", config.strategy_params, config.timeframe)
        assert config.strategy == "master" and runtime.control.running
        assert config.history_bars == need["history_bars"] > 300 and config.window == need["window"]
        assert config.strategy_params["fusion_path"] == str(user_data / "fusion.json")
        assert config.strategy_params["risk_per_trade"] == settings.risk.risk_per_trade
        view = await runtime.proxy.signals()
        assert view.available and view.strategy == "master" and set(view.pairs) == set(config.pairs)
        assert {r["source"] for r in view.fusion} >= {"technical", "mtf", "volume"}
        # /strategy's path: stored, the running engine restarted with the reference strategy (no view there).
        change = await runtime.proxy.set_strategy(ADMIN, "rsi_bollinger")
        assert change.restarted and runtime.control.engine.config.strategy == "rsi_bollinger"
        assert "fusion_path" not in runtime.control.engine.config.strategy_params
        assert not (await runtime.proxy.signals()).available
        return await runtime.proxy.stop(ADMIN)

    await _run_once(settings, first)

    async def second(runtime):
        await runtime.proxy.start(ADMIN)
        return runtime.control.engine.config.strategy, await runtime.proxy.strategy_now()

    name, view = await _run_once(settings, second)
    assert name == "rsi_bollinger" and view.current == "rsi_bollinger" and view.configured == "master"
