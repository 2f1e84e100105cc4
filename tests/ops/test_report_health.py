"""The daily report carries the supervisor's summary (component states, restarts in the last 24 h, the last
self-benchmark, resources) in the user's language; health alerts render in both languages."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.i18n import LANGUAGES, LOCALES_DIR, Catalogs
from bot.telegram.notifier import HEALTH_COMPONENTS, HEALTH_STATES, render
from tests.bot.conftest import ADMIN, VIEWER, running_bot
from trader.events import HealthAlert
from trader.monitoring.resources import ResourceUse
from trader.monitoring.supervisor import Benchmark, Component, Probe, Supervisor


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_health_word_is_in_the_catalog(language: str) -> None:
    catalog = json.loads((LOCALES_DIR / f"{language}.json").read_text(encoding="utf-8"))
    wanted = {f"health.component.{c}" for c in HEALTH_COMPONENTS} | {f"health.state.{s}" for s in HEALTH_STATES}
    assert sorted(wanted - set(catalog)) == []


def test_health_alerts_render_in_each_language() -> None:
    catalogs = Catalogs()
    event = HealthAlert(component="engine", state="restarted", detail="the engine's loop thread has ended")
    assert render(catalogs.translator("en"), event) == \
        "🚑 Health alert — Engine: restarted automatically (the engine's loop thread has ended)"
    assert render(catalogs.translator("zh_CN"), event) == "🚑 健康告警 — 引擎：已自动重启（the engine's loop thread has ended）"
    assert render(catalogs.translator("en"), HealthAlert(component="quantum", state="odd")) == "🚑 Health alert — quantum: odd"


async def test_the_daily_report_shows_the_health_summary(write_config, tmp_path) -> None:
    async with running_bot(write_config, tmp_path) as bot:
        for user in (ADMIN, VIEWER):
            bot.tg.open_private_chat(user)
        await bot.ask(VIEWER, "/settings language zh_CN")
        calls = {"n": 0}

        async def engine_probe() -> Probe:
            calls["n"] += 1
            return Probe("down", "thread ended") if calls["n"] == 1 else Probe("ok")

        async def restart() -> None:
            pass

        async def disk_probe() -> Probe:
            return Probe("warning", "85% used, 900 MB free")

        supervisor = Supervisor([Component("engine", engine_probe, restart), Component("disk", disk_probe)],
                                lambda *a: None)
        await supervisor.check()
        await supervisor.check()
        supervisor.benchmark = Benchmark(dt.datetime.now(dt.timezone.utc), rest_ms=41.6, ledger_write_ms=3.2)
        supervisor.resources = ResourceUse(cpu=0.12, rss_bytes=300 * 2**20, rss_share=0.07, disk_share=0.85,
                                           disk_free_bytes=900 * 2**20)
        bot.deps.extras["health"] = supervisor

        (job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{ADMIN}")
        await job.run(bot.app)
        report = await bot.tg.wait_for_sent(ADMIN, lambda m: m.text.startswith("🗓"))
        lines = report.text.split("\n")
        assert "Components: Engine OK, Disk warning" in lines
        assert "⚠ Disk: 85% used, 900 MB free" in lines
        assert "Automatic restarts in the last 24 h: 1" in lines
        assert "Self-benchmark: signed REST 42 ms, ledger write 3 ms" in lines
        assert "Resources: CPU 12%, RSS 7%, disk 85%" in lines

        (zh_job,) = bot.app.job_queue.get_jobs_by_name(f"daily-report:{VIEWER}")
        await zh_job.run(bot.app)
        zh = await bot.tg.wait_for_sent(VIEWER, lambda m: m.text.startswith("🗓"))
        assert "组件：引擎 正常, 磁盘 警告" in zh.text and "过去 24 小时自动重启次数：1" in zh.text
