"""E-mail alerts against a real SMTP server (aiosmtpd): STARTTLS with a self-signed certificate, AUTH LOGIN and
PLAIN, redaction, batching, and the errors a user sees when something is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.smtp_server import SmtpServer
from trader.config.loader import ConfigError, validate
from trader.config.schema import EmailConfig
from trader.monitoring.email_alerts import EmailAlerts, EmailError, send_email
from trader.security.redaction import Redactor


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def config(server: SmtpServer, **changes: object) -> EmailConfig:
    data: dict[str, object] = {
        "enabled": True, "host": "127.0.0.1", "port": server.port, "starttls": True, "ca_file": str(server.cert),
        "username": server.user, "password": server.password, "sender": "bot@example.com",
        "recipients": ["trader@example.com", "ops@example.com"], "timeout_s": 10.0,
    }
    data.update(changes)
    return EmailConfig.model_validate(data)


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_and_login_deliver_to_every_recipient(tmp_path: Path, mechanism: str) -> None:
    server = SmtpServer(tmp_path, mechanisms=(mechanism,)).start()
    try:
        send_email(config(server), "[bsmart] Stop hit", "BTC stop hit at 100000", Redactor())
        [message] = server.inbox.wait(1)
    finally:
        server.stop()
    assert server.inbox.mechanisms == [mechanism]
    assert server.inbox.tls == [True]
    assert server.inbox.envelopes == [("bot@example.com", ["trader@example.com", "ops@example.com"])]
    assert message["Subject"] == "[bsmart] Stop hit"
    assert message.get_content().strip() == "BTC stop hit at 100000"


def test_secrets_never_leave_in_an_email(smtp: SmtpServer) -> None:
    key = "K" * 20 + "binance-key-value"
    redactor = Redactor([key])
    alerts = EmailAlerts(config(smtp), redactor, batch_window_s=0.0).start()
    try:
        assert alerts.submit(f"error with {key}", f"request failed: apiKey={key}; smtp password {smtp.password}")
        assert alerts.drain(15)
    finally:
        alerts.stop()
    [message] = smtp.inbox.wait(1)
    text = message.as_string()
    assert key not in text and smtp.password not in text  # the SMTP password is registered with the redactor
    assert "apiKey=***" in message.get_content()


def test_a_burst_of_alerts_is_one_email(smtp: SmtpServer) -> None:
    alerts = EmailAlerts(config(smtp), Redactor(), batch_window_s=0.5).start()
    try:
        for i in range(5):
            alerts.submit(f"alert {i}", f"body {i}", "error")
        assert alerts.drain(15)
    finally:
        alerts.stop()
    [message] = smtp.inbox.wait(1)
    assert message["Subject"] == "alert 0 (+4)"
    assert all(f"body {i}" in message.get_content() for i in range(5))
    assert (alerts.sent, alerts.alerts_sent, alerts.dropped) == (1, 5, 0)


def test_a_wrong_password_is_a_clear_error_and_is_not_echoed(smtp: SmtpServer) -> None:
    wrong = "not-the-password-42"
    with pytest.raises(EmailError) as info:
        send_email(config(smtp, password=wrong), "s", "b", Redactor([wrong]))
    assert "login" in str(info.value) and "SMTPAuthenticationError" in str(info.value)
    assert wrong not in str(info.value)
    assert smtp.inbox.messages == []


def test_an_untrusted_certificate_is_refused(smtp: SmtpServer) -> None:
    with pytest.raises(EmailError) as info:
        send_email(config(smtp, ca_file=None), "s", "b", Redactor())  # system CAs do not know the test's cert
    assert "starttls" in str(info.value) and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert smtp.inbox.messages == []


def test_a_server_without_starttls_is_an_error_not_a_clear_text_login(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path, starttls=False).start()
    try:
        with pytest.raises(EmailError, match="starttls: not supported"):
            send_email(config(server), "s", "b", Redactor())
    finally:
        server.stop()
    assert server.inbox.messages == []


def test_failed_sends_are_retried_then_dropped_and_counted(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path).start()
    port = server.port
    server.stop()  # nothing listens there any more
    cfg = EmailConfig.model_validate({"enabled": True, "host": "127.0.0.1", "port": port, "sender": "a@b.co",
                                      "recipients": ["c@d.co"], "timeout_s": 2.0})
    alerts = EmailAlerts(cfg, Redactor(), retries=2, backoff_s=0.01, batch_window_s=0.0).start()
    try:
        alerts.submit("s", "b")
        assert alerts.drain(15)
    finally:
        alerts.stop()
    assert (alerts.sent, alerts.dropped) == (0, 1)
    assert "connect" in alerts.last_error


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ({"enabled": True}, "email.host: email.enabled is true but no SMTP host is set"),
        ({"enabled": True, "host": "h"}, "email.sender: email.enabled is true but no sender address is set"),
        ({"recipients": ["nobody"]}, "email.recipients[0]: 'nobody' is not an e-mail address"),
        ({"kinds": ["stop_hit", "weather"]}, "email.kinds: unknown alert kinds ['weather']"),
        ({"username": "u"}, "email.password: email.username is set but no password"),
        ({"username": "u", "password": "p" * 8, "starttls": False},
         "email.starttls: a login without STARTTLS would send the password in clear text"),
        ({"ca_file": "/nonexistent/ca.pem"}, "email.ca_file: '/nonexistent/ca.pem' is not a file"),
        ({"port": 0}, "email.port: Input should be greater than or equal to 1"),
    ],
)
def test_bad_email_settings_name_the_key(email: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate({"email": email})
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_the_password_comes_from_the_secret_store(tmp_path: Path, write_config) -> None:
    from trader.config.loader import load_settings
    from trader.security.secret_store import SecretStore, lookup

    ud = tmp_path / "ud"
    SecretStore(ud).set("smtp_password", "from-the-store-123")
    path = write_config({"user_data_dir": str(ud), "email": {"username": "alerts"}})
    settings = load_settings(path, environ={}, secret_lookup=lookup)
    assert settings.email.password is not None
    assert settings.email.password.get_secret_value() == "from-the-store-123"
    assert "from-the-store-123" in settings.secrets()  # so every log line and message masks it
