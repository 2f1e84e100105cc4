"""Applying strategy parameters through the composition root (main job, real LiveEngineControl, embedded
simulator): the running engine restarts with them over the config's risk parameters, and the next process start
builds its engine with them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_main_job import ADMIN, _run_once
from trader.config.loader import load_settings
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError


async def test_applied_parameters_reach_the_engine_now_and_after_a_restart(write_config, tmp_path: Path) -> None:
    settings = load_settings(write_config({"metrics": {"enabled": False}, "user_data_dir": str(tmp_path / "ud"),
                                           "max_open_trades": 2}), environ={})

    async def first(runtime):
        before = runtime.control.engine
        assert before.config.strategy_params["max_open_trades"] == 2 and "rsi_low" not in before.config.strategy_params
        with pytest.raises(ServiceError) as refused:
            await runtime.proxy.apply_strategy_params(Actor("telegram", 7, "trader"), {"rsi_low": 25.0})
        assert refused.value.code == "refused"
        # the preflight the bot asks before offering Apply's confirmation: the content, not the role
        await runtime.proxy.check_strategy_params({"rsi_low": 25})
        with pytest.raises(ServiceError) as unfit:
            await runtime.proxy.check_strategy_params({"no_such_parameter": 1})
        assert (unfit.value.reason, unfit.value.params["names"]) == ("bad_params", ["no_such_parameter"])
        applied = await runtime.proxy.apply_strategy_params(ADMIN, {"rsi_low": 25, "tp_moves": [0.01, 0.02, 0.06]})
        assert applied.restarted and applied.after == {"rsi_low": 25.0, "tp_moves": (0.01, 0.02, 0.06)}
        engine = runtime.control.engine
        assert engine is not before and runtime.control.running  # restarted, with them
        assert engine.config.strategy_params["rsi_low"] == 25.0
        assert engine.config.strategy_params["tp_moves"] == (0.01, 0.02, 0.06)
        assert engine.config.strategy_params["max_open_trades"] == 2  # the config's risk params stay underneath
        assert engine.params["rsi_low"] == 25.0  # what the strategy is built with
        return [(a.action, a.outcome) for a in runtime.core.audit.recent(10) if a.action == "apply_strategy_params"]

    audited = await _run_once(settings, first)
    assert audited == [("apply_strategy_params", "ok"), ("apply_strategy_params", "refused")]

    async def second(runtime):
        return dict(runtime.control.engine.config.strategy_params), runtime.service.strategy_params()

    config, held = await _run_once(settings, second)
    assert config["rsi_low"] == 25.0 and config["tp_moves"] == (0.01, 0.02, 0.06) and config["max_open_trades"] == 2
    assert held == {"rsi_low": 25.0, "tp_moves": (0.01, 0.02, 0.06)}
