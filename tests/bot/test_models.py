"""/models, /predict and /train through the real bot and the Telegram emulator: no model → said so (and /status
says ML is off); an admin trains the XGBoost reversal model in a spawned worker on the bundled candles with
progress and a Stop button; then /models shows it with its out-of-sample figures, /predict shows probabilities
beside the baseline, /status says ML is on. Only admins train; Stop kills the worker."""

from __future__ import annotations

import os
import re

import pytest

from bot.emulator.state import ChatMessage
from bot.i18n import Catalogs
from bot.telegram.handlers import backtest as bt
from bot.telegram.handlers import models as mh
from tests.bot.conftest import ADMIN, TRADER, VIEWER, Harness
from trader.jobs.train import TrainAsk
from trader.ml.live import ml_state
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")


@pytest.fixture(autouse=True)
def quick_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bt, "EDIT_INTERVAL_S", 0.2)


def current(h: Harness, message: ChatMessage) -> ChatMessage:
    found = h.tg.world.message(message.chat.id, message.message_id)
    assert found is not None
    return found


def actions(h: Harness, name: str) -> list[tuple[int | None, str]]:
    return [(a.actor.user_id, a.outcome) for a in h.audit(100) if a.action == name]


async def test_no_model_then_train_then_models_predict_and_status(bot: Harness) -> None:
    h = bot
    assert (await h.ask(VIEWER, "/models")).text == EN("models.none")
    assert (await h.ask(VIEWER, "/predict BTC")).text == EN("predict.no_model", pair="BTC/USDT")
    assert EN("status.ml_off") in (await h.ask(VIEWER, "/status")).text.splitlines()

    message = await h.ask(ADMIN, "/train BTC 7d")
    assert message.text.startswith(EN("train.running", model="xgb", pairs="BTC/USDT", timerange="20250527-20250603"))
    assert [b.text for b in message.buttons()] == [EN("train.button.stop")]
    done = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith(("✅", "❌")), timeout=120)
    assert done.text.startswith("✅"), done.text
    assert "xgb v1: activated" in done.text and "reversal: log loss" in done.text
    assert done.buttons() == []
    assert actions(h, "train_start") == [(ADMIN, "ok")]
    assert h.research.backtest_jobs.running() == []
    state = ml_state(h.settings.models_dir)
    assert state.on and [(m.name, m.version) for m in state.active] == [("xgb", "v0001")]

    listing = (await h.ask(VIEWER, "/models")).text
    assert listing.startswith(EN("models.title")) and "● xgb v1 (xgb)" in listing
    assert "trained on BTC/USDT, 2025-05-27 → 2025-06-03" in listing and "(majority " in listing
    assert re.search(r"seed target \(reversal accuracy > 65 %\): (met|NOT met) — precision [\d.]+% on \d+ calls",
                     listing), listing

    predicted = (await h.ask(VIEWER, "/predict btc")).text
    assert predicted.startswith("🔮 BTC/USDT as of the newest stored 5m bar, 2025-06-03")
    assert re.search(r"Reversal: bottom \d+% · top \d+% · none \d+%   \(baseline \d+% / \d+% / \d+%\)", predicted) \
        or predicted.splitlines()[1].startswith(EN("predict.withheld", reason="@").split("@")[0]), predicted
    assert "Models: xgb v1" in predicted or "withheld" in predicted

    status = (await h.ask(VIEWER, "/status")).text.splitlines()
    assert any(re.fullmatch(r"ML: xgb v1, \d+ min old", line) for line in status), status
    await h.ask(VIEWER, "/settings language zh_CN")
    assert any(line.startswith("ML：xgb v1，已 ") for line in (await h.ask(VIEWER, "/status")).text.splitlines())


async def test_stop_kills_the_training_worker(bot: Harness) -> None:
    h = bot
    message = await h.ask(ADMIN, "/train BTC,ETH,SOL 30d")
    (job,) = h.research.backtest_jobs.running()
    assert job.kind == "train"
    pid = h.research.backtest_jobs.pid(job.job_id)
    assert pid is not None
    busy = await h.ask(ADMIN, "/backtest rsi_bollinger BTC 15m 20250510-20250513")
    assert busy.text == EN("hyperopt.busy", id=job.job_id[-12:], kind=EN("hyperopt.kind.train"))
    query = h.tg.press_button(ADMIN, current(h, message), text=EN("train.button.stop"))
    assert (await h.tg.wait_for_answer(query)).text == EN("train.stopping")
    stopped = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith(("⏹", "✅")), timeout=30)
    assert stopped.text.startswith("⏹"), stopped.text
    assert stopped.buttons() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert h.research.backtest_jobs.running() == []
    await h.tg.wait_for(lambda: actions(h, "train_cancel") or None, what="audit")
    assert actions(h, "train_cancel") == [(ADMIN, "ok")]
    assert not ml_state(h.settings.models_dir).on


async def test_only_admins_train_and_bad_arguments_are_answered(bot: Harness) -> None:
    h = bot
    for user, role in ((TRADER, "trader"), (VIEWER, "viewer")):
        denied = await h.ask(user, "/train")
        assert denied.text == EN("gate.role_too_low", command="train", role=EN(f"role.{role}"),
                                 needed=EN("role.admin"))
    with pytest.raises(ServiceError) as refused:
        await h.research.start_train(Actor("telegram", TRADER, "trader"), TrainAsk(), lambda _p: None)
    assert refused.value.code == "refused"
    assert (await h.ask(ADMIN, "/train 99d")).text == EN("train.bad_days", text="99d", max=30) + "\n" + EN("usage.train")
    assert (await h.ask(ADMIN, "/train BTC,ETH,SOL,XRP")).text == \
        EN("train.too_many_pairs", count=4, max=3) + "\n" + EN("usage.train")
    assert (await h.ask(ADMIN, "/train BTC 7d x")).text == \
        EN("train.bad_argument", text="x", max=30) + "\n" + EN("usage.train")
    missing = await h.ask(ADMIN, "/train DOGE")
    assert missing.text.startswith(EN("train.missing_data", pairs="DOGE/USDT", command="@").split("@")[0])
    assert h.research.backtest_jobs.running() == []
    assert (await h.ask(VIEWER, "/predict")).text == EN("args.usage", usage=EN("usage.predict"))
    assert (await h.ask(VIEWER, "/predict BTC-USD")).text == EN("args.bad_pair", text="BTC-USD")


def test_status_line_forms() -> None:
    from trader.ml.live import ActiveModel, MLState

    now = 10 * 3_600_000
    on = MLState((ActiveModel("xgb", "v0003", "xgb", now - 2 * 3_600_000, None, True),))
    assert mh.status_line(EN, on, now) == "ML: xgb v3, 2 h old"
    assert mh.status_line(EN, MLState(()), now) == "ML: off — no active model"
    broken = MLState((ActiveModel("xgb", "v0002", "xgb", None, None, False, "expired"),))
    assert mh.status_line(EN, broken, now) == "ML: off — xgb v2 not usable: expired"
    assert mh.status_line(ZH, on, now) == "ML：xgb v3，已 2 小时"
    latest = (1_746_476_400_000, 90.0)  # the engine's newest prediction: 2025-05-05 20:20 bar, made 90 s ago
    assert mh.status_line(EN, on, now, latest) == "ML: xgb v3, 2 h old; last prediction 05-05 20:20 UTC bar, made 1 min ago"
    assert mh.status_line(EN, MLState(()), now, latest) == "ML: off — no active model"


def test_train_parses_the_model_and_bounds_the_networks() -> None:
    assert mh.parse(["gru", "BTC", "3d"]) == TrainAsk(pairs=("BTC/USDT:USDT",), days=3, model="gru")
    assert mh.parse(["LSTM"]) == TrainAsk(model="lstm") and mh.parse([]).model == "xgb"
    with pytest.raises(bt.BadArgument) as long_net:
        mh.parse(["gru", "20d"])
    assert long_net.value.key == "train.net_days" and long_net.value.fields == {"model": "gru", "max": 14}
    assert mh.parse(["xgb", "20d"]).days == 20  # the reversal model keeps the 30-day bound
    with pytest.raises(bt.BadArgument):
        mh.parse(["gru", "lstm"])  # one model per run: the second word is not a pair


@pytest.mark.slow
async def test_admin_trains_a_gru_in_the_worker_without_tensorflow_here(bot: Harness) -> None:
    import sys

    h = bot
    had_tf = "tensorflow" in sys.modules  # other tests in this process may have loaded it themselves
    message = await h.ask(ADMIN, "/train BTC 3d gru")
    assert message.text.startswith(EN("train.running", model="gru", pairs="BTC/USDT", timerange="20250531-20250603"))
    assert [b.text for b in message.buttons()] == [EN("train.button.stop")]
    done = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith(("✅", "❌")), timeout=300)
    assert done.text.startswith("✅"), done.text
    assert re.search(r"gru v1: (activated|saved)", done.text) and "dir_15" in done.text, done.text
    assert had_tf or "tensorflow" not in sys.modules  # TensorFlow ran in the worker process only
    listing = (await h.ask(VIEWER, "/models")).text
    assert "gru v1" in listing  # stored; active only if it beat the baselines out of sample
