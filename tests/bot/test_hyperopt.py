"""/hyperopt through the real bot, the Telegram emulator and a real TradingService: a bounded run in a spawned
worker on the bundled candles (BTC/ETH/SOL 1m, May 2025, resampled to 15m), progress edits, the best parameters
with an Apply button, the confirmed and audited apply that a new service on the same database still sees."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from bot.emulator.state import ChatMessage
from bot.i18n import Catalogs
from bot.telegram.handlers import backtest as bt
from bot.telegram.handlers import hyperopt as ho
from tests.bot.conftest import ADMIN, TRADER, VIEWER, Harness
from trader.bootstrap import open_core
from trader.events import EventBus
from trader.jobs.hyperopt import HyperoptAsk
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError
from trader.service.service import TradingService

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")
PROGRESS = re.compile(r"⏳ (\d+) % · fold (\d)/(\d) · trial (\d+) / (\d+)")
TINY = "/hyperopt BTC 15m 20250520-20250603 epochs=10 folds=2"
LONG = "/hyperopt BTC,ETH 1m 20250510-20250603 epochs=100 folds=3"  # minutes of work: only ever stopped


@pytest.fixture(autouse=True)
def quick_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bt, "EDIT_INTERVAL_S", 0.2)


def current(h: Harness, message: ChatMessage) -> ChatMessage:
    found = h.tg.world.message(message.chat.id, message.message_id)
    assert found is not None
    return found


def actions(h: Harness, name: str) -> list[tuple[int | None, str]]:
    return [(a.actor.user_id, a.outcome) for a in h.audit(100) if a.action == name]


async def question_after(h: Harness, results: ChatMessage) -> ChatMessage:
    query = h.tg.press_button(ADMIN, current(h, results), text=EN("hyperopt.button.apply"))
    await h.tg.wait_for_answer(query)
    return await h.tg.wait_for_sent(ADMIN, lambda m: (m.text or "").startswith(
        EN("hyperopt.confirm", strategy="rsi_bollinger")))


async def test_admin_runs_a_tiny_hyperopt_and_applies_the_result_with_confirmation(bot: Harness) -> None:
    h = bot
    admin = Actor("telegram", ADMIN, "admin")
    await h.service.start(admin)  # a running engine restarts to use applied parameters
    message = await h.ask(ADMIN, TINY)
    assert message.text.startswith(EN("hyperopt.running", strategy="rsi_bollinger", pairs="BTC/USDT", timeframe="15m",
                                      timerange="20250520-20250603", epochs=10, folds=2, spaces="buy, sell",
                                      loss="sharpe"))
    assert [b.text for b in message.buttons()] == [EN("hyperopt.button.stop")]
    done = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith("✅"), timeout=60)
    seen = [PROGRESS.search(r.text or "") for r in done.history]
    trials = [(int(m.group(4)), int(m.group(5))) for m in seen if m]
    assert trials and all(total == 20 for _, total in trials), [r.text for r in done.history]
    assert [d for d, _ in trials] == sorted(d for d, _ in trials)
    assert re.match(re.escape(EN("hyperopt.finished", id="RUNID", elapsed="ELAPSED", folds=2, trials=20))
                    .replace("RUNID", r"\w{12}").replace("ELAPSED", r"\d+:\d\d"), done.text or "")
    assert EN("hyperopt.result.params") in done.text and "  rsi_period = " in done.text
    assert [b.text for b in done.buttons()] == [EN("hyperopt.button.apply")]
    shown = dict(line.strip().split(" = ") for line in (done.text or "").splitlines() if line.startswith("  "))
    assert set(shown) == {"rsi_period", "rsi_low", "rsi_high", "bb_period", "bb_dev", "time_stop_bars", "breakeven"}
    assert actions(h, "hyperopt_start") == [(ADMIN, "ok")]
    assert h.research.backtest_jobs.running() == []

    # Apply asks first; Cancel changes nothing.
    question = await question_after(h, done)
    assert [b.callback_data.split(":")[0] for b in question.buttons()] == ["cf", "cf"]
    assert "  rsi_period = " + shown["rsi_period"] in question.text
    cancelled = await h.press(ADMIN, question, "n")
    assert cancelled.text == EN("confirm.cancelled")
    assert h.service.strategy_params() == {} and h.core.runtime_state.get("strategy_params") is None
    # Asked again and confirmed: stored, audited, the running engine restarted with them.
    question = await question_after(h, done)
    applied = await h.press(ADMIN, question, "y")
    assert applied.text.startswith(EN("hyperopt.applied", strategy="rsi_bollinger")), applied.text
    params = h.service.strategy_params()
    assert "\n".join(ho.params_lines(params)) in done.text  # what was shown is what was applied
    assert isinstance(params["rsi_period"], int) and isinstance(params["breakeven"], bool)
    assert h.service.engine is not None and h.service.engine.running
    assert actions(h, "apply_strategy_params") == [(ADMIN, "ok")]
    stored = h.core.runtime_state.get("strategy_params")
    assert stored["strategy"] == "rsi_bollinger" and stored["params"] == params
    # A confirmation asked before a later change is stale on press.
    question = await question_after(h, done)
    await h.service.apply_strategy_params(admin, {"rsi_low": 22.5})
    stale = await h.press(ADMIN, question, "y")
    assert stale.text == EN("confirm.stale")
    assert h.service.strategy_params()["rsi_low"] == 22.5
    # Results can be applied for an hour (the bot's clock), then the button is refused.
    h.advance(ho.APPLY_TTL_S + 1)
    late = h.tg.press_button(ADMIN, current(h, done), text=EN("hyperopt.button.apply"))
    assert (await h.tg.wait_for_answer(late)).text == EN("hyperopt.expired")
    # Like every expired button it goes; the results are a message in their own right and stay.
    kept = await h.tg.wait_for_edit(done, lambda m: m.buttons() == [])
    assert kept.text == done.text
    assert [a.arguments["reason"] for a in h.audit(5) if a.action == "hyperopt_button"][:1] == ["expired"]

    # A new process on the same database: the applied parameters are still there.
    core = open_core(h.settings, console_logging=False, file_logging=False)
    try:
        again = TradingService(h.settings, core, h.service.client, EventBus())
        assert again.strategy_params() == {**params, "rsi_low": 22.5}
    finally:
        core.close()


async def test_stop_kills_the_hyperopt_worker(bot: Harness) -> None:
    h = bot
    message = await h.ask(ADMIN, LONG)
    (job,) = h.research.backtest_jobs.running()
    assert job.kind == "hyperopt"
    pid = h.research.backtest_jobs.pid(job.job_id)
    assert pid is not None
    await h.tg.wait_for_edit(message, lambda m: bool(PROGRESS.search(m.text or ""))
                             and PROGRESS.search(m.text or "").group(4) != "0", timeout=60)  # type: ignore[union-attr]
    # The same admin cannot start a backtest meanwhile: one heavy job per user, of either kind.
    busy = await h.ask(ADMIN, "/backtest rsi_bollinger BTC 15m 20250510-20250513")
    assert busy.text == EN("hyperopt.busy", id=job.job_id[-12:], kind=EN("hyperopt.kind.hyperopt"))
    query = h.tg.press_button(ADMIN, current(h, message), text=EN("hyperopt.button.stop"))
    assert (await h.tg.wait_for_answer(query)).text == EN("hyperopt.stopping")
    stopped = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith("⏹"), timeout=30)
    assert stopped.buttons() == [] and "/ 300 trials" in (stopped.text or "")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert h.research.backtest_jobs.running() == []
    await h.tg.wait_for(lambda: actions(h, "hyperopt_cancel") or None, what="audit")
    assert actions(h, "hyperopt_cancel") == [(ADMIN, "ok")]
    assert h.service.strategy_params() == {}


async def test_traders_and_viewers_cannot_hyperopt_or_apply(bot: Harness) -> None:
    h = bot
    for user, role in ((TRADER, "trader"), (VIEWER, "viewer")):
        denied = await h.ask(user, TINY)
        assert denied.text == EN("gate.role_too_low", command="hyperopt", role=EN(f"role.{role}"),
                                 needed=EN("role.admin"))
    assert h.research.backtest_jobs.running() == [] and actions(h, "hyperopt_start") == []
    # The service refuses on its own too, whoever calls it.
    trader = Actor("telegram", TRADER, "trader")
    with pytest.raises(ServiceError) as refused:
        await h.research.start_hyperopt(trader, HyperoptAsk(epochs=1, folds=1), lambda _p: None)
    assert refused.value.code == "refused"
    with pytest.raises(ServiceError) as refused:
        await h.service.apply_strategy_params(trader, {"rsi_low": 25.0})
    assert refused.value.code == "refused" and h.service.strategy_params() == {}
    assert actions(h, "apply_strategy_params") == [(TRADER, "refused")]
    # A pressed Apply forged by a trader meets the role check before anything else.
    forged = h.tg.press_button(TRADER, await h.ask(TRADER, "/status"), "ho:AAAAAAAAAAAAAAAA:a", strict=False)
    assert (await h.tg.wait_for_answer(forged)).text == EN("gate.role_too_low", command="hyperopt",
                                                           role=EN("role.trader"), needed=EN("role.admin"))
    fake = h.tg.press_button(ADMIN, await h.ask(ADMIN, "/status"), "ho:AAAAAAAAAAAAAAAA:a", strict=False)
    assert (await h.tg.wait_for_answer(fake)).text == EN("confirm.invalid")


@pytest.mark.parametrize(("text", "key", "fields"), [
    ("/hyperopt epochs=500", "hyperopt.bad_epochs", {"text": "500", "max": 100}),
    ("/hyperopt folds=0", "hyperopt.bad_folds", {"text": "0", "max": 3}),
    ("/hyperopt loss=pnl", "hyperopt.bad_loss", {"text": "pnl", "choices": "sharpe, sortino, calmar, profit_drawdown"}),
    ("/hyperopt seed=3", "hyperopt.bad_option", {"text": "seed=3"}),
    ("/hyperopt BTC 7m", "hyperopt.bad_timeframe", {"text": "7m", "choices": ", ".join(bt.TIMEFRAMES)}),
    ("/hyperopt BTC 20250513-20250510", "hyperopt.bad_range", {"text": "20250513-20250510", "max_days": 3650}),
    ("/hyperopt BTC,ETH,SOL,XRP", "hyperopt.too_many_pairs", {"count": 4, "max": 3}),
])
async def test_bad_arguments_are_answered_and_change_nothing(bot: Harness, text: str, key: str,
                                                             fields: dict[str, Any]) -> None:
    answer = await bot.ask(ADMIN, text)
    assert answer.text == EN(key, **fields) + "\n" + EN("usage.hyperopt")
    assert answer.buttons() == [] and bot.research.backtest_jobs.running() == []
    assert actions(bot, "hyperopt_start") == [] and bot.service.strategy_params() == {}


async def test_refusals_from_the_service_are_translated(bot: Harness) -> None:
    h = bot
    unknown = await h.ask(ADMIN, "/hyperopt BTC spaces=buy,nosuch")
    assert unknown.text.startswith(EN("error.invalid_argument", detail="@").split("@")[0]) and "nosuch" in unknown.text
    short = await h.ask(ADMIN, "/hyperopt BTC 1h 20250520-20250521 folds=3")
    assert "too short" in short.text
    await h.ask(ADMIN, "/settings language zh_CN")
    missing = await h.ask(ADMIN, "/hyperopt DOGE 15m 20240101-20240115")
    assert missing.text == ZH("hyperopt.missing_data", pairs="DOGE/USDT", timeframe="15m", timerange="20240101-20240115",
                              command="bsmart download --pairs DOGE --timeframes 15m --timerange 20240101-20240115")
    bad = await h.ask(ADMIN, "/hyperopt epochs=0")
    assert bad.text == ZH("hyperopt.bad_epochs", text="0", max=100) + "\n" + ZH("usage.hyperopt")
    assert h.research.backtest_jobs.running() == [] and h.service.strategy_params() == {}
    assert [o for _, o in actions(h, "hyperopt_start")] == ["refused", "refused", "refused"]


async def test_apply_rejects_parameters_the_strategy_does_not_declare(bot: Harness) -> None:
    admin = Actor("telegram", ADMIN, "admin")
    for bad in ({"nope": 1}, {"rsi_period": "14"}, {"tp_moves": [0.01]}, {}):
        with pytest.raises(ServiceError) as refused:
            await bot.service.apply_strategy_params(admin, bad)
        assert refused.value.code == "invalid_argument"
    assert bot.service.strategy_params() == {} and bot.core.runtime_state.get("strategy_params") is None
    applied = await bot.service.apply_strategy_params(admin, {"tp_moves": [0.0075, 0.02, 0.06]})
    assert not applied.restarted and applied.after == {"tp_moves": (0.0075, 0.02, 0.06)}  # engine not running
    assert ho.params_lines(applied.after) == ["  tp_moves = 0.0075, 0.02, 0.06"]
