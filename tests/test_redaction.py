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
