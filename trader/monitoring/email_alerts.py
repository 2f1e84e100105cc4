"""Alerts by e-mail: SMTP with STARTTLS and a login, beside Telegram.

``send_email`` delivers one message and raises ``EmailError`` saying why it could not. ``EmailAlerts`` is what the
rest of the process uses: ``submit`` never blocks (the engine publishes alerts from its own threads), one worker
thread delivers, retrying a failed send a few times. Alerts that arrive while a send is under way go out together in
the next e-mail, so a burst of fifty errors is one mail, not fifty. Every subject and body passes the redactor, and
the SMTP password is registered with it.

A login is only ever sent after STARTTLS (the schema refuses a username without it) and the server's certificate is
checked against the system's CAs or ``email.ca_file``; a server that does not offer STARTTLS is an error, never a
fall-back to clear text.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from trader.config.schema import EmailConfig
from trader.security.redaction import Redactor

log = logging.getLogger(__name__)

QUEUE_SIZE = 200
RETRIES = 3
BACKOFF_S = 5.0
BATCH_WINDOW_S = 2.0  # how long the worker waits for more alerts before sending what it has
MAX_BATCH = 50


class EmailError(Exception):
    """An e-mail could not be sent; the message says why (redacted)."""


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str
    kind: str = ""


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    """Certificate and host name checked; ``ca_file`` replaces the system's CAs (a relay with a private CA)."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def compose(config: EmailConfig, subject: str, body: str, redactor: Redactor) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender or ""
    message["To"] = ", ".join(config.recipients)
    message["Subject"] = redactor(subject)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=(config.sender or "bsmart@localhost").rsplit("@", 1)[-1])
    message.set_content(redactor(body))
    return message


def send_email(config: EmailConfig, subject: str, body: str, redactor: Redactor) -> None:
    """Deliver one message to every recipient; ``EmailError`` names the step that failed."""
    if not (config.host and config.sender and config.recipients):
        raise EmailError("e-mail is not configured (email.host, email.sender, email.recipients)")
    message = compose(config, subject, body, redactor)
    step = "connect"
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
            step = "ehlo"
            smtp.ehlo()
            if config.starttls:
                step = "starttls"
                smtp.starttls(context=tls_context(config))
                smtp.ehlo()
            if config.username:
                step = "login"
                smtp.login(config.username, config.password.get_secret_value() if config.password else "")
            step = "send"
            refused = smtp.send_message(message)
    except smtplib.SMTPNotSupportedError as exc:
        raise EmailError(redactor(f"{config.host}:{config.port} {step}: not supported by the server ({exc})")) from None
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
        raise EmailError(redactor(f"{config.host}:{config.port} {step}: {type(exc).__name__}: {exc}")) from None
    if refused:
        # Some recipients took it: not worth a retry that would duplicate it for them; say who did not.
        log.warning("e-mail alert refused for %s", ", ".join(sorted(refused)))


class EmailAlerts:
    """A bounded queue and one worker thread in front of ``send_email``."""

    def __init__(
        self,
        config: EmailConfig,
        redactor: Redactor,
        *,
        queue_size: int = QUEUE_SIZE,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
        batch_window_s: float = BATCH_WINDOW_S,
        send: Callable[[EmailConfig, str, str, Redactor], None] = send_email,
    ):
        self.config = config
        self.redactor = redactor
        if config.password is not None:
            redactor.add(config.password.get_secret_value())
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch_window_s = batch_window_s
        self._send = send
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.sent = 0  # e-mails delivered
        self.alerts_sent = 0  # alerts inside them
        self.dropped = 0  # alerts given up on (queue full or every attempt failed)
        self.last_error = ""

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> EmailAlerts:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="email-alerts", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (within ``timeout``), then end the worker."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass  # the worker sees _stopping after its current batch
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- in ---------------------------------------------------------------------------------------------------------
    def submit(self, subject: str, body: str, kind: str = "") -> bool:
        """Queue an alert; False (and counted as dropped) when the queue is full. Never blocks, never raises."""
        try:
            self._queue.put_nowait(Alert(subject, body, kind))
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("e-mail queue full: dropped a %s alert", kind or "an")
            return False

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far was sent or dropped (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    # -- out --------------------------------------------------------------------------------------------------------
    def _collect(self, first: Alert) -> tuple[list[Alert], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.batch_window_s
        while len(batch) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.task_done()
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            batch, stop = self._collect(item)
            try:
                self._deliver(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _deliver(self, batch: list[Alert]) -> None:
        subject = batch[0].subject if len(batch) == 1 else f"{batch[0].subject} (+{len(batch) - 1})"
        body = "\n\n----\n\n".join(a.body for a in batch)
        for attempt in range(1, self.retries + 2):
            try:
                self._send(self.config, subject, body, self.redactor)
                self.sent += 1
                self.alerts_sent += len(batch)
                self.last_error = ""
                return
            except EmailError as exc:
                self.last_error = str(exc)
                log.warning("e-mail alert not sent (attempt %d): %s", attempt, exc)
            except Exception as exc:  # a bug in composing must not end the worker
                self.last_error = self.redactor(f"{type(exc).__name__}: {exc}")
                log.exception("e-mail alert failed")
                break
            if attempt <= self.retries and not self._stopping.wait(self.backoff_s * 2 ** (attempt - 1)):
                continue
            break
        self.dropped += len(batch)
        log.error("e-mail alert dropped (%d alerts): %s", len(batch), self.last_error)
