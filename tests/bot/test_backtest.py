"""/backtest, /backtests and /backtest_show through the real bot, the Telegram emulator and a real TradingService
whose backtests run in spawned worker processes on the bundled candles (BTC/ETH/SOL 1m, May 2025)."""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from bot.emulator import TelegramEmulator
from bot.emulator.state import ChatMessage
from bot.i18n import Catalogs
from bot.telegram.app import build_application
from bot.telegram.handlers import backtest as bt
from reports.text.backtest import LABELS as ROW_LABELS
from tests.bot.conftest import ADMIN, PAIRS, TRADER, VIEWER, Harness, make_settings
from tests.bot.test_proxy import EngineLoop
from tests.exchange.conftest import make_client
from trader.bootstrap import open_core
from trader.data.store import bundled_data_dir
from trader.events import EventBus
from trader.persistence.audit import Actor
from trader.persistence.models import BacktestRun
from trader.service.errors import ServiceError
from trader.service.proxy import ResearchProxy, ServiceProxy
from trader.service.research import ResearchService
from trader.service.service import TradingService
from trader.sim.config import SimConfig
from trader.sim.server import SimulatorServer

EN = Catalogs().translator("en")
ZH = Catalogs().translator("zh_CN")
PROGRESS = re.compile(r"⏳ (\d+) % · ([\d,]+) / ([\d,]+) bars · \d+:\d\d elapsed")
LONG = "/backtest rsi_bollinger BTC,ETH,SOL 1m 20250504-20250603"  # ~5 s of work: long enough to interrupt


@pytest.fixture(autouse=True)
def quick_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Telegram needs ~2 s between edits; the emulator does not, and the runs here last a second or two.
    monkeypatch.setattr(bt, "EDIT_INTERVAL_S", 0.2)


def current(h: Harness, message: ChatMessage) -> ChatMessage:
    found = h.tg.world.message(message.chat.id, message.message_id)
    assert found is not None
    return found


async def pick(h: Harness, user_id: int, message: ChatMessage, label: str, then: str) -> ChatMessage:
    """Press the button labelled `label`; the same message, edited into a text starting with `then`."""
    before = len(current(h, message).history)
    query = h.tg.press_button(user_id, message, text=label)
    await h.tg.wait_for_answer(query)
    return await h.tg.wait_for_edit(message, lambda m: len(m.history) > before and (m.text or "").startswith(then),
                                    timeout=10)


def runs(h: Harness) -> list[BacktestRun]:
    with h.core.sessions() as s:
        return list(s.scalars(select(BacktestRun)).all())


def photos_after(h: Harness, user_id: int, count: int) -> list[ChatMessage]:
    return [m for m in h.tg.sent(user_id) if m.photo][count:]


async def wait_running(h: Harness, message: ChatMessage) -> tuple[int, int]:
    edited = await h.tg.wait_for_edit(message, lambda m: bool(PROGRESS.search(m.text or ""))
                                      and PROGRESS.search(m.text or "").group(2) != "0", timeout=20)  # type: ignore[union-attr]
    found = PROGRESS.search(edited.text or "")
    assert found is not None
    return int(found.group(2).replace(",", "")), int(found.group(3).replace(",", ""))


async def test_backtest_with_pickers_progress_summary_charts_list_and_show(bot: Harness) -> None:
    h = bot
    picker = await h.ask(TRADER, "/backtest")
    assert picker.text.startswith(EN("backtest.pick.strategy"))
    assert [b.text for b in picker.buttons()] == [*sorted(bt.STRATEGIES), EN("backtest.button.cancel")]
    await pick(h, TRADER, picker, "rsi_bollinger", EN("backtest.pick.pairs"))
    labels = [b.text for b in current(h, picker).buttons()]
    assert labels[:2] == ["BTC/USDT", "ETH/USDT"] and EN("backtest.pick.all_pairs", count=2) in labels
    await pick(h, TRADER, picker, EN("backtest.pick.all_pairs", count=2), EN("backtest.pick.timeframe"))
    await pick(h, TRADER, picker, "5m", EN("backtest.pick.timerange"))
    labels = [b.text for b in current(h, picker).buttons()]
    everything = EN("backtest.pick.stored_all", range="20250504-20250603")
    assert EN("backtest.pick.stored_days", days=3, range="20250531-20250603") in labels and everything in labels
    assert EN("backtest.pick.recent_days", days=30) in labels
    await pick(h, TRADER, picker, everything, EN("backtest.running", strategy="rsi_bollinger", pairs="BTC/USDT, ETH/USDT",
                                                 timeframe="5m", timerange="20250504-20250603"))
    done = await h.tg.wait_for_edit(picker, lambda m: (m.text or "").startswith("✅"), timeout=40)
    assert done.buttons() == []  # the Stop button is gone with the run
    shown = [r.text or "" for r in done.history]
    progress = [PROGRESS.search(text) for text in shown]
    seen = [(int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))) for m in progress if m]
    assert seen, shown  # the message was edited with progress before the end
    total = seen[-1][1]
    assert all(t == total for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert any(r.reply_markup and "⏹" in str(r.reply_markup) for r in done.history)
    (run,) = runs(h)
    short = run.id[-12:]
    assert re.fullmatch(re.escape(EN("backtest.finished", id=short, bars=f"{total:,}", elapsed="@")).replace("@", r"\d+:\d\d"),
                        done.text or "")
    assert run.status == "done" and run.requested_by == TRADER and run.timerange == "20250504-20250603"
    assert run.metrics["bars"] == total and run.pairs == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    summary = await h.tg.wait_for_sent(TRADER, lambda m: (m.text or "").startswith(EN("backtest.summary.title", id=short)),
                                       timeout=20)
    assert EN("backtest.summary.line", label=EN("backtest.row.trades"), value=f"{run.metrics['metrics']['trades']:,}") \
        in summary.text
    assert EN("backtest.summary.show", id=short) in summary.text
    photos = await h.tg.wait_for(lambda: photos_after(h, TRADER, 0) if len(photos_after(h, TRADER, 0)) == 4 else None,
                                 timeout=30, what="four charts")
    assert [p.caption for p in photos] == [EN(f"backtest.chart.{k}") for k in bt.CHARTS]
    for p in photos:
        image = Image.open(io.BytesIO(p.photo_bytes or b""))
        assert image.size[0] >= 800 and np.unique(np.asarray(image.convert("L"))).size > 10  # not blank

    listing = await h.ask(VIEWER, "/backtests")
    assert listing.text.startswith(EN("backtest.list.title", count=1))
    assert short in listing.text and EN("backtest.status.done") in listing.text and "20250504-20250603" in listing.text
    again = await h.ask(VIEWER, f"/backtest_show {short}", timeout=10)
    assert again.text == summary.text  # read back from the export: the same figures
    await h.tg.wait_for(lambda: True if len(photos_after(h, VIEWER, 0)) == 4 else None, timeout=30, what="charts again")
    h.tg.send_text(VIEWER, "/backtest_show nosuchrun")
    unknown = await h.tg.wait_for_sent(VIEWER, lambda m: m.text == EN("backtest.show.unknown", id="nosuchrun"))
    assert unknown.buttons() == []
    started = [a for a in h.audit(50) if a.action == "backtest_start"]
    assert [(a.actor.user_id, a.outcome) for a in started] == [(TRADER, "ok")]


def progress_edits(h: Harness, message: ChatMessage) -> list[Any]:
    return [c for c in h.tg.calls("editMessageText") if str(c.params.get("message_id")) == str(message.message_id)
            and PROGRESS.search(str(c.params.get("text", "")))]


async def test_stop_kills_the_worker_and_the_run_is_cancelled(bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = bot
    monkeypatch.setattr(bt, "EDIT_INTERVAL_S", 1.0)  # the worker reports every 0.25 s: edits must be sparser
    message = await h.ask(TRADER, LONG)
    assert message.text.startswith(EN("backtest.running", strategy="rsi_bollinger", pairs="BTC/USDT, ETH/USDT, SOL/USDT",
                                       timeframe="1m", timerange="20250504-20250603"))
    (job,) = h.research.backtest_jobs.running()
    pid = h.research.backtest_jobs.pid(job.job_id)
    assert pid is not None
    done, total = await wait_running(h, message)
    assert 0 < done < total
    edits = await h.tg.wait_for(lambda: progress_edits(h, message) if len(progress_edits(h, message)) >= 3 else None,
                                timeout=20, what="three progress edits")
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(edits, edits[1:], strict=False)]
    assert min(gaps) >= 0.9, gaps
    query = h.tg.press_button(TRADER, current(h, message), text=EN("backtest.button.stop"))
    assert (await h.tg.wait_for_answer(query)).text == EN("backtest.stopping")
    stopped = await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith("⏹"), timeout=20)
    assert stopped.buttons() == [] and f"/ {total:,} bars" in (stopped.text or "")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    (run,) = runs(h)
    assert run.id == job.job_id and run.status == "cancelled" and run.result_dir == ""
    assert h.research.backtest_jobs.running() == []
    await h.tg.wait_for(lambda: [a for a in h.audit(50) if a.action == "backtest_cancel"] or None, what="audit")
    assert [(a.actor.user_id, a.outcome) for a in h.audit(50) if a.action == "backtest_cancel"] == [(TRADER, "ok")]
    listing = await h.ask(TRADER, "/backtests")
    assert EN("backtest.status.cancelled") in listing.text
    shown = await h.ask(TRADER, f"/backtest_show {run.id}")
    assert EN("backtest.show.no_result") in shown.text
    # The Stop button was single-use: pressing it again is refused.
    stale = h.tg.press_button(TRADER, message, callback_data=re.sub(r"^(bt:[^:]+:).*", r"\1x", _stop_data(stopped)),
                              strict=False)
    assert (await h.tg.wait_for_answer(stale)).text == EN("confirm.used")


def _stop_data(message: ChatMessage) -> str:
    for revision in reversed(message.history):
        for row in (revision.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("callback_data", "").startswith("bt:"):
                    return str(button["callback_data"])
    raise AssertionError("no Stop button was ever shown")


async def test_one_job_per_user_and_the_bot_stays_responsive(bot: Harness) -> None:
    h = bot
    message = await h.ask(TRADER, LONG)
    await wait_running(h, message)
    second = await h.ask(TRADER, "/backtest rsi_bollinger BTC 15m 20250510-20250513")
    (job,) = h.research.backtest_jobs.running()
    assert second.text == EN("backtest.busy", id=job.job_id[-12:])
    # The bot answers other commands at once while the worker computes.
    t0 = time.monotonic()
    status = await h.ask(VIEWER, "/status")
    assert time.monotonic() - t0 < 2.0 and status.text
    assert h.research.backtest_jobs.running(), "the backtest should still be running"
    assert len(runs(h)) == 1
    refused = [a for a in h.audit(50) if a.action == "backtest_start" and a.outcome == "refused"]
    assert len(refused) == 1
    # Only its owner (or an admin) may stop it.
    with pytest.raises(ServiceError) as foreign:
        await h.research.cancel_backtest(_actor(h, VIEWER), job.job_id)
    assert foreign.value.code == "refused" and h.research.backtest_jobs.running()
    await h.research.cancel_backtest(_actor(h, ADMIN), job.job_id)
    await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith("⏹"), timeout=20)
    assert [r.status for r in runs(h)] == ["cancelled"]


async def test_closing_the_service_stops_running_backtests(bot: Harness) -> None:
    h = bot
    message = await h.ask(TRADER, LONG)
    await wait_running(h, message)
    await h.research.close_backtests()
    assert h.research.backtest_jobs.running() == []
    await h.tg.wait_for_edit(message, lambda m: (m.text or "").startswith("⏹"), timeout=20)
    assert [r.status for r in runs(h)] == ["cancelled"]


def _actor(h: Harness, user_id: int) -> Actor:
    return Actor("telegram", user_id, h.deps.access.role_of(user_id))


async def test_missing_data_names_the_download_command(bot: Harness) -> None:
    h = bot
    answer = await h.ask(TRADER, "/backtest rsi_bollinger BTC,DOGE 15m 20240101-20240105")
    command = "bsmart download --pairs BTC,DOGE --timeframes 15m --timerange 20240101-20240105"
    assert answer.text == EN("backtest.missing_data", pairs="BTC/USDT, DOGE/USDT", timeframe="15m",
                             timerange="20240101-20240105", command=command)
    # One store serves a run: the sample has ETH but not DOGE, so both go into the user's store.
    partly = await h.ask(TRADER, "/backtest rsi_bollinger DOGE,ETH 1h 20250510-20250513")
    assert "bsmart download --pairs DOGE,ETH --timeframes 1h --timerange 20250510-20250513" in partly.text
    await h.ask(TRADER, "/settings language zh_CN")
    chinese = await h.ask(TRADER, "/backtest rsi_bollinger SOL 4h 20230101-20230201")
    assert chinese.text == ZH("backtest.missing_data", pairs="SOL/USDT", timeframe="4h", timerange="20230101-20230201",
                              command="bsmart download --pairs SOL --timeframes 4h --timerange 20230101-20230201")
    assert runs(h) == [] and h.research.backtest_jobs.running() == []


@pytest.mark.parametrize(("text", "key", "fields"), [
    ("/backtest rsi_bollinger BTC 7m 20250510-20250513", "backtest.bad_timeframe",
     {"text": "7m", "choices": ", ".join(bt.TIMEFRAMES)}),
    ("/backtest rsi_bolinger BTC 15m 20250510-20250513", "backtest.bad_argument",
     {"text": "rsi_bolinger", "strategies": ", ".join(sorted(bt.STRATEGIES))}),
    ("/backtest rsi_bollinger BTC 15m 20250513-20250510", "backtest.bad_range", {"text": "20250513-20250510",
                                                                                 "max_days": 3650}),
    ("/backtest BTC 15m 99999d", "backtest.bad_range", {"text": "99999d", "max_days": 3650}),
    ("/backtest " + ",".join(f"C{i}" for i in range(11)), "backtest.too_many_pairs", {"count": 11, "max": 10}),
])
async def test_bad_arguments_are_answered_and_nothing_is_stored(bot: Harness, text: str, key: str,
                                                                fields: dict[str, Any]) -> None:
    answer = await bot.ask(TRADER, text)
    assert answer.text == EN(key, **fields) + "\n" + EN("usage.backtest")
    assert answer.buttons() == [] and runs(bot) == []
    assert not [a for a in bot.audit(50) if a.action == "backtest_start"]


async def test_a_step_with_one_choice_is_not_asked(bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bt, "STRATEGIES", {"rsi_bollinger": bt.STRATEGIES["rsi_bollinger"]})
    picker = await bot.ask(TRADER, "/backtest 15m")
    assert picker.text.startswith(EN("backtest.pick.pairs")) and "rsi_bollinger" in picker.text
    assert EN("backtest.pick.strategy") not in picker.text


async def test_a_viewer_cannot_start_one_and_buttons_are_guarded(bot: Harness) -> None:
    h = bot
    denied = await h.ask(VIEWER, "/backtest rsi_bollinger BTC 15m 20250510-20250513")
    assert denied.text == EN("gate.role_too_low", command="backtest", role=EN("role.viewer"), needed=EN("role.trader"))
    picker = await h.ask(TRADER, "/backtest rsi_bollinger 15m")
    assert picker.text.startswith(EN("backtest.pick.pairs"))
    data = picker.buttons()[0].callback_data
    # A viewer forging the trader's button is stopped by the role check; a forged nonce by the nonce check.
    forged = h.tg.press_button(VIEWER, picker, data, strict=False)
    assert (await h.tg.wait_for_answer(forged)).text == EN("gate.role_too_low", command="backtest",
                                                           role=EN("role.viewer"), needed=EN("role.trader"))
    fake = h.tg.press_button(TRADER, picker, "bt:AAAAAAAAAAAAAAAA:0", strict=False)
    assert (await h.tg.wait_for_answer(fake)).text == EN("confirm.invalid")
    # Picking is single-use: the press moves on to the range, the same button again is refused.
    await pick(h, TRADER, picker, "BTC/USDT", EN("backtest.pick.timerange"))
    replay = h.tg.press_button(TRADER, picker, data, strict=False)
    assert (await h.tg.wait_for_answer(replay)).text == EN("confirm.used")
    # And it expires.
    h.advance(bt.PICK_TTL_S + 1)
    late = h.tg.press_button(TRADER, current(h, picker), text=EN("backtest.pick.recent_days", days=7))
    await h.tg.wait_for_answer(late)
    expired = await h.tg.wait_for_edit(picker, lambda m: m.text == EN("backtest.pick.expired"))
    assert expired.buttons() == []
    # Cancel on a picker ends it without a run.
    other = await h.ask(TRADER, "/backtest")
    await pick(h, TRADER, other, EN("backtest.button.cancel"), EN("backtest.pick.cancelled"))
    assert runs(h) == []
    denials = [a for a in h.audit(50) if a.outcome == "denied" and a.action in ("backtest", "backtest_button")]
    assert len(denials) >= 3


def test_every_summary_row_and_status_is_translated() -> None:
    catalogs = Catalogs()
    for language in ("en", "zh_CN"):
        texts = catalogs.texts[language]
        for key in ROW_LABELS:
            if not key.startswith("mc_"):
                assert f"backtest.row.{key}" in texts, (language, key)
        for status in ("running", "done", "failed", "cancelled"):
            assert f"backtest.status.{status}" in texts
        for chart in bt.CHARTS:
            assert f"backtest.chart.{chart}" in texts


def test_arguments_in_any_order() -> None:
    draft = bt.parse(["btc/usdt:usdt,ETHUSDT", "1h", "rsi_bollinger", "30d"])
    assert draft == bt.Draft("rsi_bollinger", ("BTC/USDT:USDT", "ETH/USDT:USDT"), "1h", "30d")
    assert bt.parse(["1d"]).timeframe == "1d" and bt.parse(["4h", "1d"]).timerange == "1d"
    assert bt.parse(["SOL", "20250504-"]).missing() == "strategy"
    assert bt.parse([]).missing() == "strategy"
    with pytest.raises(bt.BadArgument):
        bt.parse(["20250504-20250510", "7d"])


async def test_backtest_through_the_service_proxy(write_config: Any, tmp_path: Any) -> None:
    """Production shape: the service on the engine's loop and thread, the bot on its own; progress arrives from
    the job's follower thread and still lands on the bot's loop."""
    engine = EngineLoop()
    sim = SimulatorServer(SimConfig(port=0, clock_mode="stepped", pairs=PAIRS))
    try:
        async with TelegramEmulator() as tg:
            settings = make_settings(write_config, tmp_path, tg)
            core = open_core(settings, console_logging=False, file_logging=False)
            await engine.run(sim.start())
            client = make_client(sim)
            await engine.run(client.initialize(settings.pair_whitelist, settings.leverage))
            service = TradingService(settings, core, client, EventBus())
            research = ResearchService(settings, core, current=lambda: (service.pairs, service.leverage))
            app = build_application(settings, ServiceProxy(service, engine.loop), core, rate_limit=False,
                                    research=ResearchProxy(research, engine.loop))
            await app.initialize()
            await app.start()
            await app.updater.start_polling(timeout=10)
            try:
                await tg.wait_for_poll()
                tg.send_text(TRADER, "/backtest rsi_bollinger ETH 15m 20250510-20250513")
                message = await tg.wait_for_sent(TRADER)
                done = await tg.wait_for_edit(message, lambda m: (m.text or "").startswith("✅"), timeout=30)
                assert "288" in (done.text or "")
                await tg.wait_for(lambda: True if len([m for m in tg.sent(TRADER) if m.photo]) >= 3 else None,
                                  timeout=30, what="charts")
                assert [r.status for r in await engine.run(research.backtests())] == ["done"]
            finally:
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
                await engine.run(research.close_backtests())
                await engine.run(client.close())
                core.close()
    finally:
        await engine.run(sim.stop())
        engine.close()


async def test_data_gone_before_the_worker_reads_it_gives_the_download_hint(bot: Harness) -> None:
    h = bot
    store = h.settings.data_dir
    store.mkdir(parents=True, exist_ok=True)
    copied = store / "BTC_USDT_USDT-1m-futures.parquet"
    shutil.copy(bundled_data_dir() / copied.name, copied)
    message = await h.ask(TRADER, "/backtest rsi_bollinger BTC 15m 20250510-20250513")
    copied.unlink()  # the worker is still starting (a spawn takes most of a second): it will find nothing
    failed = await h.tg.wait_for_edit(message, lambda m: "bsmart download" in (m.text or ""), timeout=20)
    assert failed.text == EN("backtest.missing_data", pairs="BTC/USDT", timeframe="15m", timerange="20250510-20250513",
                             command="bsmart download --pairs BTC --timeframes 15m --timerange 20250510-20250513")
    (run,) = runs(h)
    assert run.status == "failed" and "FileNotFoundError" in run.error


async def test_a_deleted_progress_message_is_replaced_once_and_followed(bot: Harness) -> None:
    h = bot
    message = await h.ask(TRADER, LONG)
    await wait_running(h, message)
    await h.app.bot.delete_message(TRADER, message.message_id)
    moved = await h.tg.wait_for_sent(TRADER, lambda m: bool(PROGRESS.search(m.text or "")), timeout=10)
    await h.tg.wait_for_edit(moved, lambda m: len(m.history) >= 2, timeout=10)  # edits follow the new message
    assert [m.message_id for m in h.tg.sent(TRADER) if PROGRESS.search(m.text or "") and not m.deleted] \
        == [moved.message_id]
    query = h.tg.press_button(TRADER, current(h, moved), text=EN("backtest.button.stop"))
    assert (await h.tg.wait_for_answer(query)).text == EN("backtest.stopping")
    await h.tg.wait_for_edit(moved, lambda m: (m.text or "").startswith("⏹"), timeout=20)
    assert [r.status for r in runs(h)] == ["cancelled"]
