"""Operations end to end: the main job recovers a corrupt ledger at start and says so by e-mail (in the configured
language), the supervisor restarts an engine whose thread died, a second job on the same user_data is refused;
and with the real bot, a Telegram outage sends what would ring a phone by e-mail (aiosmtpd with STARTTLS)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.i18n import catalogs
from bot.main_job import run_main_job
from bot.telegram.email_route import EmailRouter
from tests.bot.conftest import ADMIN, running_bot
from tests.ops.smtp_server import SmtpServer
from tests.ops.test_backup import corrupt, ledger
from trader.config.loader import load_settings
from trader.config.schema import EmailConfig
from trader.events import LiquidationWarning, StopHit
from trader.monitoring.email_alerts import EmailAlerts
from trader.ops.backup import create_backup, list_backups
from trader.ops.runlock import RunLock
from trader.persistence.audit import Actor

FAST = {"backoff_s": 0.05, "retries": 2, "send_timeout_s": 1.0}


def email_section(smtp: SmtpServer, **changes: Any) -> dict[str, Any]:
    return {"enabled": True, "host": "127.0.0.1", "port": smtp.port, "ca_file": str(smtp.cert),
            "username": smtp.user, "password": smtp.password, "sender": "bot@example.com",
            "recipients": ["trader@example.com"], "timeout_s": 10.0, **changes}


def subjects(smtp: SmtpServer) -> list[str]:
    return [str(m["Subject"]) for m in smtp.inbox.messages]


async def wait_for_mail(smtp: SmtpServer, needle: str, timeout: float = 30.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for message in list(smtp.inbox.messages):
            text = f"{message['Subject']}\n{message.get_content()}"
            if needle in text:
                return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"no e-mail with {needle!r}; got {subjects(smtp)}")


async def test_main_job_recovers_the_ledger_restarts_a_dead_engine_and_mails_both(write_config, tmp_path: Path) -> None:
    smtp = SmtpServer(tmp_path).start()
    try:
        config = write_config({
            "metrics": {"enabled": False}, "user_data_dir": str(tmp_path / "ud"),
            "telegram": {"language": "zh_CN"},
            "email": email_section(smtp, kinds=["health"]),
            "health": {"interval_s": 3600, "benchmark_interval_s": 60},  # checks are driven by the test
        })
        settings = load_settings(config, environ={})
        db = ledger(settings, audits=2)
        good = create_backup(settings)
        corrupt(db)
        stop = asyncio.Event()
        seen: dict[str, Any] = {}

        def on_ready(runtime, info) -> None:
            async def go() -> None:
                try:
                    ops = runtime.operations
                    seen["recovery_mail"] = await wait_for_mail(smtp, "已从备份恢复")
                    # A second main job on the same user_data is refused while this one runs.
                    seen["second"] = await run_main_job(settings, asyncio.Event())
                    # The engine's loop thread dies under it: the next check restarts it.
                    old = runtime.control.engine
                    await asyncio.to_thread(old.host.stop)
                    summary = await ops.supervisor.check()
                    seen["states"] = {c.name: c.state for c in summary.components}
                    seen["restarts"] = summary.restarts_24h
                    seen["new_engine"] = runtime.control.engine is not old and runtime.control.running
                    seen["restart_mail"] = await wait_for_mail(smtp, "已自动重启")
                    seen["audit"] = [r.action for r in runtime.core.audit.recent(20) if r.actor == Actor("health")]
                    after = await ops.supervisor.check()
                    seen["after"] = {c.name: c.state for c in after.components}
                finally:
                    stop.set()

            asyncio.ensure_future(go())

        code = await asyncio.wait_for(run_main_job(settings, stop, heartbeat_s=0.2, on_ready=on_ready,
                                                   config_path=config), 240)
    finally:
        smtp.stop()
    assert code == 0
    assert seen["second"] == 1
    assert list(db.parent.glob("tradesv3.sqlite.corrupt-*")), "the corrupt ledger is kept aside"
    assert "数据库" in seen["recovery_mail"] and good.name in seen["recovery_mail"]
    assert seen["states"]["engine"] == "down"  # what the check found (and restarted); the next one says ok
    assert seen["audit"] == ["engine_restart"]
    assert seen["restarts"] == 1 and seen["new_engine"]
    assert "引擎" in seen["restart_mail"]
    assert seen["after"]["engine"] == "ok" and seen["after"]["database"] == "ok"
    assert seen["after"]["exchange"] == "ok"
    assert smtp.password not in "".join(m.as_string() for m in smtp.inbox.messages)
    assert RunLock(settings.user_data_dir).acquire("test")  # released at shutdown
    assert list_backups(settings.backups_dir)[0] == good.path


async def test_a_telegram_outage_sends_ringing_alerts_by_email(write_config, tmp_path: Path) -> None:
    smtp = SmtpServer(tmp_path).start()
    try:
        async with running_bot(write_config, tmp_path, notifier_options=FAST) as bot:
            bot.tg.open_private_chat(ADMIN)
            notifier = bot.deps.notifier
            settings = bot.settings.model_copy(update={"email": EmailConfig.model_validate(
                email_section(smtp, kinds=["liquidation_warning"]))})
            alerts = EmailAlerts(settings.email, bot.core.redactor, batch_window_s=0.0).start()
            router = EmailRouter(settings, alerts, catalogs(), telegram_ok=lambda: not notifier.failing)
            unsubscribe = bot.bus.subscribe(router.on_event)
            notifier.on_undelivered = router.undelivered
            try:
                def stop_hit(price: str) -> StopHit:
                    return StopHit(pair="ETH/USDT:USDT", trade_id=1, price=Decimal(price), realized_pnl=Decimal("-1"))

                # Telegram down for longer than the notifier's retries: dropped there, mailed instead.
                bot.tg.fail_next("sendMessage", 502, "Bad Gateway", times=3)
                bot.bus.publish(stop_hit("3001"))
                await notifier.drain()
                assert notifier.failing
                await wait_for_mail(smtp, "3,001.00")
                # While failing, the next ringing alert goes by e-mail at once (and Telegram, back, gets it too).
                bot.bus.publish(stop_hit("3002"))
                await notifier.drain()
                assert not notifier.failing
                await wait_for_mail(smtp, "3,002.00")
                # Telegram healthy: a stop hit is not mailed; a chosen kind always is.
                bot.bus.publish(stop_hit("3003"))
                bot.bus.publish(LiquidationWarning(pair="BTC/USDT:USDT", mark_price=Decimal("100"),
                                                   liquidation_price=Decimal("96"), distance=Decimal("0.04")))
                await notifier.drain()
                await wait_for_mail(smtp, "Liquidation")
                assert alerts.drain(15)
            finally:
                unsubscribe()
                alerts.stop()
            texts = [m.get_content() for m in smtp.inbox.messages]
            assert not any("3,003.00" in t for t in texts)
            assert sum("3,001.00" in t for t in texts) == 1  # once, though retried and meant for several chats
            assert all(str(m["Subject"]).startswith("[bsmart] ") for m in smtp.inbox.messages)
    finally:
        smtp.stop()
