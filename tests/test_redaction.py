from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import pytest

from trader.logging_setup import PERFORMANCE_LOGGER, setup_logging
from trader.security.redaction import MASK, RedactingFilter, Redactor

API_SECRET = "Zx9SECRETvalue0123456789abcdef"
BOT_TOKEN = "7012345678:AAH-bot-token-value"


@pytest.fixture
def logs(tmp_path: Path):
    redactor = Redactor([API_SECRET, BOT_TOKEN])
    setup_logging("DEBUG", tmp_path / "logs", redactor, console=True)
    yield tmp_path / "logs"
    setup_logging("WARNING", None, Redactor(), console=False)


def _flush() -> None:
    for handler in logging.getLogger().handlers + logging.getLogger(PERFORMANCE_LOGGER).handlers:
        handler.flush()


def test_redactor_masks_every_occurrence() -> None:
    redactor = Redactor([API_SECRET, BOT_TOKEN, "abc"])  # too short to be a secret: left alone
    text = f"GET https://api.telegram.org/bot{BOT_TOKEN}/getMe secret={API_SECRET}&again={API_SECRET} abc"
    out = redactor(text)
    assert API_SECRET not in out and BOT_TOKEN not in out
    assert out.count(MASK) == 3 and out.endswith("abc")


def test_overlapping_secrets_are_masked_whole() -> None:
    assert Redactor(["secret-part", "the-secret-part-and-more"])("x the-secret-part-and-more y") == f"x {MASK} y"


def test_log_files_and_console_never_hold_a_secret(logs: Path, capfd: pytest.CaptureFixture[str]) -> None:
    child = logging.getLogger("trader.exchange.client")  # propagates to root's handlers
    child.info("signed request with %s", API_SECRET)
    child.warning("bot url %(url)s", {"url": f"/bot{BOT_TOKEN}/sendMessage"})
    try:
        raise RuntimeError(f"auth failed for {API_SECRET}")
    except RuntimeError:
        child.exception("exchange error")
    logging.getLogger(PERFORMANCE_LOGGER).warning("slow call token=%s", BOT_TOKEN)
    _flush()
    console = capfd.readouterr().err
    for name in ("trading.log", "errors.log", "performance.log"):
        text = (logs / name).read_text()
        assert API_SECRET not in text and BOT_TOKEN not in text, name
    assert API_SECRET not in console and BOT_TOKEN not in console
    trading = (logs / "trading.log").read_text()
    assert "signed request with ***" in trading
    assert "RuntimeError: auth failed for ***" in trading  # the traceback is kept, only the secret is masked


def test_filter_survives_bad_format_strings() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %d", (API_SECRET,), None)
    assert RedactingFilter(Redactor([API_SECRET])).filter(record)
    assert API_SECRET not in record.getMessage()


def test_files_are_split_by_purpose_and_stamped_in_utc(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")  # UTC+8: a local-time stamp would be 8 hours off
    time.tzset()
    try:
        logging.getLogger("trader.engine").info("an info line")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    logging.getLogger("trader.engine").error("an error line")
    logging.getLogger(PERFORMANCE_LOGGER).info("latency p99=3ms")
    _flush()
    trading = (logs / "trading.log").read_text()
    errors = (logs / "errors.log").read_text()
    perf = (logs / "performance.log").read_text()
    assert "an info line" in trading and "an error line" in trading and "latency" not in trading
    assert "an error line" in errors and "an info line" not in errors
    assert "latency p99=3ms" in perf and "an info line" not in perf
    stamp = trading.splitlines()[0].split(" ")[0]
    assert stamp.endswith("Z")
    logged = dt.datetime.strptime(stamp[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - logged).total_seconds()) < 60


def test_setup_is_idempotent(tmp_path: Path) -> None:
    for _ in range(3):
        setup_logging("INFO", tmp_path / "logs", Redactor(), console=False)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_bsmart_handler", False)]
    assert len(ours) == 2  # trading.log + errors.log
    setup_logging("WARNING", None, Redactor(), console=False)


# --- credential look-alikes and the database guard (issue 11) ---------------------------------------------------

BINANCE_LIKE = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
TOKEN_LIKE = "5555555555:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_look_alikes_are_masked_without_configuration_but_digests_are_not() -> None:
    redactor = Redactor()
    assert not redactor  # nothing configured ...
    text = f"key={BINANCE_LIKE} bot{TOKEN_LIKE}/getMe lower={BINANCE_LIKE.lower()} digest={SHA256} {SHA256.upper()}"
    out = redactor(text)
    assert out == f"key={MASK} bot{MASK}/getMe lower={MASK} digest={SHA256} {SHA256.upper()}"  # ... masked anyway
    assert redactor("a uuid 3f2b8c1e-6a4d-4b7f-9c2e-1d5a7b9c0e3f and 12:34:56") == \
        "a uuid 3f2b8c1e-6a4d-4b7f-9c2e-1d5a7b9c0e3f and 12:34:56"


def test_configured_secrets_are_masked_in_any_case_and_json_spelling() -> None:
    redactor = Redactor([API_SECRET, 'we"ird\\pass'])
    assert redactor(f"/{API_SECRET.lower()} {API_SECRET.upper()}") == f"/{MASK} {MASK}"
    assert redactor('{"text": "we\\"ird\\\\pass"}') == '{"text": "***"}'
    assert redactor.value({"args": [API_SECRET, (1, f"x{API_SECRET}")], API_SECRET: None}) == \
        {"args": [MASK, (1, f"x{MASK}")], MASK: None}


def test_filter_masks_look_alikes_with_no_secret_configured() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user typed %s", (BINANCE_LIKE,), None)
    assert RedactingFilter(Redactor()).filter(record)
    assert record.getMessage() == f"user typed {MASK}"


def test_every_database_writer_is_redacted_by_the_engine(tmp_path: Path) -> None:
    """A writer that knows nothing of redaction (raw ORM rows, Core updates, executemany, text()) still stores
    only masked text; secrets added after the engine was built (the bot token) count; lookups still work."""
    from sqlalchemy import text, update

    from trader.persistence.audit import Actor, AuditLog
    from trader.persistence.database import make_engine, make_session_factory, transaction
    from trader.persistence.migrate import upgrade
    from trader.persistence.models import AuditEvent, BotUserSettings, RuntimeState
    from trader.persistence.types import utcnow
    from trader.security.redaction import guard_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    redactor = Redactor([API_SECRET])
    guard_engine(engine, redactor)
    guard_engine(engine, redactor)  # idempotent: one hook
    upgrade(engine)
    redactor.add(BOT_TOKEN)  # known only later, like the bot token
    sessions = make_session_factory(engine)
    with transaction(sessions) as s:
        s.add(AuditEvent(time=utcnow(), source="test", action="x", outcome="ok",
                         arguments={"text": f"/flatten {API_SECRET}", BOT_TOKEN: [BINANCE_LIKE]}, detail=TOKEN_LIKE))
        s.add(RuntimeState(key="user_settings", value={"note": API_SECRET.lower()}, updated_by=BOT_TOKEN))
        s.add_all(BotUserSettings(user_id=i, language="en", report_time="08:00", timezone=BINANCE_LIKE,
                                  notifications={"x": API_SECRET}) for i in range(3))
    with transaction(sessions) as s:
        s.execute(update(AuditEvent).values(detail=f"again {API_SECRET}"))
        s.execute(text("INSERT INTO runtime_state (key, value, updated_at, updated_by) VALUES (:k, :v, :t, :u)"),
                  {"k": "paused", "v": "true", "t": "2024-01-01 00:00:00", "u": f"cli {API_SECRET}"})
    AuditLog(sessions).record(Actor("test"), "y", {"digest": SHA256})  # a bare AuditLog: the engine still guards
    with engine.connect() as conn:
        dump = repr([conn.exec_driver_sql(f"SELECT * FROM {t}").all()
                     for t in ("audit_events", "runtime_state", "bot_user_settings")])
    for secret in (API_SECRET, BOT_TOKEN, BINANCE_LIKE, TOKEN_LIKE):
        assert secret.lower() not in dump.lower()
    assert SHA256 in dump and dump.count(MASK) >= 10
    with sessions() as s:  # a lookup by a value passes the same redaction, so it finds what was stored
        assert s.query(RuntimeState).filter(RuntimeState.updated_by == BOT_TOKEN).count() == 1
    engine.dispose()
