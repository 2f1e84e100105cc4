"""/strategy (trader, confirmed, audited, kept in RuntimeState) and /signals (viewer: what the running strategy sees)
against the Telegram emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bot.conftest import TRADER, VIEWER
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError

SNAPSHOT: dict[str, Any] = {
    "pairs": {
        "BTC/USDT:USDT": {"regime": "trending", "route": "trend", "ready": True,
                          "last_signal": {"at_ms": 1_700_000_000_000, "side": 1, "setup": "trend", "grade": 2,
                                          "regime": "trending", "score": 0.41, "weights": {}, "votes": {},
                                          "taken": True},
                          "position": {"setup": "trend", "grade": 2, "side": 1, "regime": "trending"},
                          "ml": {"at_ms": 1_700_000_100_000, "score": -0.12, "reason": "", "models": {"xgb": "v0003"},
                                 "probabilities": {}, "age_s": 3.0, "elapsed_ms": 80.0},
                          "patterns": [{"timeframe": "1h", "kind": "double_top", "direction": -1,
                                        "completion_ms": 1_700_000_000_000, "level": 37000.0}]},
        "ETH/USDT:USDT": {"regime": "unknown", "route": "none", "ready": False, "last_signal": None,
                          "position": None,
                          "ml": {"at_ms": 1_700_000_100_000, "score": None, "models": {},
                                 "reason": "xgb: out of distribution (dissimilarity 9.1 above 4.2)"}},
    },
    "fusion": [{"regime": "trending", "source": "technical", "weight": 0.5, "hit_rate": 0.62, "low": 0.4,
                "high": 0.8, "n": 8, "muted": False},
               {"regime": "trending", "source": "volume", "weight": 0.1, "hit_rate": 0.3, "low": 0.1,
                "high": 0.5, "n": 6, "muted": True}],
}


async def test_strategy_shows_the_choices_and_refuses_unknown_names(bot) -> None:
    shown = (await bot.ask(TRADER, "/strategy")).text
    assert "Strategy in force: rsi_bollinger (config file: rsi_bollinger)" in shown
    assert "rsi_bollinger ✓" in shown and "master" in shown and "oscillation" in shown
    refused = await bot.ask(TRADER, "/strategy turbo")
    assert "turbo is not a strategy" in refused.text and "master" in refused.text and not refused.buttons()
    assert "already rsi_bollinger" in (await bot.ask(TRADER, "/strategy rsi_bollinger")).text
    assert "Usage:" in (await bot.ask(TRADER, "/strategy master trend")).text
    assert "needs the" in (await bot.ask(VIEWER, "/strategy master")).text
    assert bot.core.runtime_state.get("strategy") is None and len(bot.deps.confirmations) == 0
    with pytest.raises(ServiceError) as refusal:
        await bot.service.set_strategy(Actor("telegram", TRADER, "trader"), "turbo")
    assert "unknown strategy" in str(refusal.value) and "master" in str(refusal.value)


async def test_strategy_change_is_confirmed_audited_kept_and_restarts_a_running_engine(bot) -> None:
    bot.service.engine.running = True
    question = await bot.ask(TRADER, "/strategy MASTER")
    assert "from rsi_bollinger to master" in question.text and "restarts" in question.text
    assert bot.service.strategy == "rsi_bollinger"  # nothing before Confirm
    done = await bot.press(TRADER, question)
    assert "changed from rsi_bollinger to master; the engine restarted" in done.text
    assert bot.core.runtime_state.get("strategy") == "master" and bot.service.strategy == "master"
    assert bot.service.engine.running
    assert any(a.action == "set_strategy" and a.outcome == "ok" and a.actor.user_id == TRADER for a in bot.audit())
    assert "Strategy in force: master (config file: rsi_bollinger)" in (await bot.ask(TRADER, "/strategy")).text
    await bot.ask(TRADER, "/settings language zh_CN")
    zh = await bot.ask(TRADER, "/strategy trend")
    assert "将策略从 master 换为 trend" in zh.text


async def test_signals_say_when_there_is_nothing_to_show(bot) -> None:
    stopped = (await bot.ask(VIEWER, "/signals")).text
    assert "Trading is not running" in stopped and "rsi_bollinger" in stopped
    bot.service.engine.running = True  # the stand-in engine has no strategy view, like the reference strategy
    assert "has no regime or signal view" in (await bot.ask(VIEWER, "/signals")).text
    assert "is not a pair" in (await bot.ask(VIEWER, "/signals BTC-EUR")).text
    assert "Usage:" in (await bot.ask(VIEWER, "/signals BTC ETH")).text


async def test_signals_show_regime_route_last_signal_and_fusion(bot) -> None:
    engine = bot.service.engine
    engine.running = True

    async def strategy_status() -> dict[str, Any]:
        return SNAPSHOT

    engine.strategy_status = strategy_status
    text = (await bot.ask(VIEWER, "/signals")).text
    assert text.startswith("📡 Signals — rsi_bollinger")
    assert "BTC/USDT: regime trending, route trend" in text
    assert "long trend, grade 2, fusion score +0.41 → taken" in text
    assert "position: long by trend, grade 2" in text
    assert "ETH/USDT: regime unknown, route none (warming up)" in text and "no graded signal yet" in text
    assert "trending: technical 0.50 (62%, n=8) · volume 0.10 (30%, n=6) 🔇" in text
    assert "model 11-14 22:15: score -0.12 (−1 down … +1 up; xgb v0003)" in text
    assert "model 11-14 22:15: no prediction — xgb: out of distribution" in text
    assert "patterns (completed): double top 1h ↓ 11-14 22:13" in text
    one = (await bot.ask(VIEWER, "/signals eth")).text
    assert "ETH/USDT" in one and "BTC/USDT" not in one
    assert "is not traded by the running engine" in (await bot.ask(VIEWER, "/signals SOL")).text
    await bot.ask(VIEWER, "/settings language zh_CN")
    zh = (await bot.ask(VIEWER, "/signals")).text
    assert "市场状态 trending" in zh and "已采纳" in zh and "融合权重" in zh and "价格形态（已完成）" in zh


async def test_signals_of_a_single_setup(bot) -> None:
    engine = bot.service.engine
    engine.running = True
    single = {"pairs": {"BTC/USDT:USDT": {**SNAPSHOT["pairs"]["BTC/USDT:USDT"], "regime": None,
                                          "route": "oscillation", "ml": None, "patterns": []}}, "fusion": []}

    async def strategy_status() -> dict[str, Any]:
        return single

    engine.strategy_status = strategy_status
    text = (await bot.ask(VIEWER, "/signals")).text
    assert "BTC/USDT: setup oscillation" in text and "regime" not in text
    assert "model" not in text and "patterns" not in text and "Fusion weights" not in text


async def test_help_places_the_new_commands(bot) -> None:
    viewer = (await bot.ask(VIEWER, "/help")).text
    trader = (await bot.ask(TRADER, "/help")).text
    assert "/signals" in viewer and "/strategy" not in viewer
    assert "/strategy — Show or change the strategy ⚠" in trader
    assert trader.index("Trading control") < trader.index("/strategy") < trader.index("Backtests and optimisation")
