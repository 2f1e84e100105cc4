"""Which engine events also go by e-mail, rendered as the bot would render them, in the configured language.

- Kinds listed in ``email.kinds`` always go by e-mail as well.
- With ``email.fallback`` (the default), while Telegram is failing (the bot is not running, the Telegram API is
  unreachable, or the notifier had to drop a message after its retries) every kind that rings a phone by default
  goes by e-mail too; a message the notifier drops is mailed as it was (once, however many chats it was for).

``on_event`` is called on the publisher's thread: it renders and queues (``EmailAlerts.submit`` never blocks).
Texts pass the redactor in ``EmailAlerts`` before they leave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.i18n import Catalogs
from bot.telegram.notifier import Outgoing, health_words, render
from bot.telegram.store import DEFAULT_LEVELS
from trader.config.schema import Settings
from trader.events import Event, HealthAlert
from trader.monitoring.email_alerts import EmailAlerts

log = logging.getLogger(__name__)

RINGING = frozenset(k for k, level in DEFAULT_LEVELS.items() if level == "on")
DEDUP_S = 120.0  # a dropped message is mailed once, not once per chat it was meant for


class EmailRouter:
    def __init__(self, settings: Settings, sender: EmailAlerts, catalogs: Catalogs,
                 telegram_ok: Callable[[], bool], clock: Callable[[], float] = time.monotonic):
        self.kinds = frozenset(settings.email.kinds)
        self.fallback = settings.email.fallback
        self.t = catalogs.translator(settings.email.language or settings.telegram.language)
        self.sender = sender
        self.telegram_ok = telegram_ok
        self.clock = clock
        self._recent: dict[str, float] = {}

    def reason(self, kind: str) -> str | None:
        """"chosen", "fallback" or None (not by e-mail)."""
        if kind in self.kinds:
            return "chosen"
        if self.fallback and kind in RINGING and not self.telegram_ok():
            return "fallback"
        return None

    def subject(self, event: Event) -> str:
        what = self.t(f"event.{event.kind}")
        if isinstance(event, HealthAlert):
            what = f"{what}: {health_words(self.t, event.component, event.state)}"
        return self.t("email.subject", what=what)

    def on_event(self, event: Event) -> None:
        try:
            if self.reason(event.kind) is None:
                return
            body = f"{render(self.t, event)}\n\n{event.time:%Y-%m-%d %H:%M:%S} UTC"
            self._remember(body)
            self.sender.submit(self.subject(event), body, event.kind)
        except Exception:  # an e-mail that cannot be prepared must not disturb the publisher (the engine)
            log.exception("e-mail for %s could not be prepared", event.kind)

    def undelivered(self, item: Outgoing) -> None:
        """The notifier gave up on a message: mail it unless it went by e-mail already."""
        if not self.fallback or item.kind not in RINGING or item.kind in self.kinds:
            return
        if self._seen(item.text):
            return
        self.sender.submit(self.t("email.subject", what=self.t(f"event.{item.kind}")), item.text, item.kind)

    def _remember(self, text: str) -> None:
        self._recent[_head(text)] = self.clock()

    def _seen(self, text: str) -> bool:
        now = self.clock()
        self._recent = {k: at for k, at in self._recent.items() if now - at < DEDUP_S}
        key = _head(text)
        if key in self._recent:
            return True
        self._recent[key] = now
        return False


def _head(text: str) -> str:
    return text.split("\n\n", 1)[0]

