"""The one store for every inline button the bot posts: confirmations, backtest pickers, job Stop buttons,
hyperopt's Apply, a notification's Details.

A button carries only ``<prefix>:<nonce>:<choice>``; what it means lives here, bound to the user, chat and
message it was posted to, expiring after its TTL (``None``: until released, e.g. a job's Stop lives as long as the
job) and, unless posted as reusable, usable once. ``claim`` is the single check every press goes through:

- forged data (wrong shape, unknown nonce), a replay of a used button and another user's press are refused with
  an alert and audited under the kind's ``audit_action``; a foreign press does not consume the button, so its
  owner can still use it;
- an expired button is refused the same way whether it is still held or was already swept away: audited
  (denied, "expired"), answered with the kind's expiry text, and its message loses its buttons — a question or
  picker is edited into the expiry text, a message that is a result in its own right (``keep_text``: hyperopt's
  results, a notification) keeps its text;
- anything else is taken (single use) and handed to the caller with the choice pressed.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telegram.error import BadRequest, TelegramError

from bot.telegram.context import BotDeps, Caller, send_text

log = logging.getLogger(__name__)

MAX_PENDING = 5000
MAX_SPENT = 10000
NONCE = r"[A-Za-z0-9_-]{16}"


@dataclass(frozen=True)
class Kind:
    """One family of buttons: its prefix, the choices its data may carry, how refusals are audited and said."""

    prefix: str
    choices: str  # regular expression for the choice part, e.g. "[yn]" or r"x|\d{1,2}"
    audit_action: str
    expired_key: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(rf"^{re.escape(self.prefix)}:({NONCE}):({self.choices})$"))

    def match(self, data: str) -> tuple[str, str] | None:
        found = self._pattern.match(data)  # type: ignore[attr-defined]
        return (found.group(1), found.group(2)) if found else None

    def data(self, nonce: str, choice: str) -> str:
        return f"{self.prefix}:{nonce}:{choice}"


@dataclass
class Entry:
    nonce: str
    kind: Kind
    user_id: int
    chat_id: int
    message_id: int | None  # None until the message exists: a press before that is foreign
    created: float
    ttl_s: float | None  # None: until released
    payload: Any = None
    reusable: bool = False  # pressing does not consume it (hyperopt's Apply only asks; the question is single-use)
    keep_text: bool = False  # on expiry only the buttons go; the message text stays
    audit_as: tuple[str, dict[str, Any]] | None = None  # the action it stands for, audited "refused" on expiry
    extra: dict[str, Any] = field(default_factory=dict)


class ButtonStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, confirm_ttl_s: float = 60.0):
        self.clock = clock
        self.confirm_ttl_s = confirm_ttl_s
        self._pending: OrderedDict[str, Entry] = OrderedDict()
        self._spent: OrderedDict[str, tuple[str, Entry]] = OrderedDict()  # nonce → ("used" | "expired", entry)

    # -- book-keeping -------------------------------------------------------------------------------------------------
    def add(self, kind: Kind, caller: Caller | None, *, ttl_s: float | None, payload: Any = None,
            message_id: int | None = None, reusable: bool = False, keep_text: bool = False,
            audit_as: tuple[str, dict[str, Any]] | None = None, user_id: int | None = None,
            chat_id: int | None = None) -> Entry:
        """A button for ``caller`` (or for ``user_id`` in ``chat_id``, e.g. a notification's)."""
        self.sweep()
        user_id = caller.user_id if user_id is None and caller is not None else user_id
        chat_id = caller.chat_id if chat_id is None and caller is not None else chat_id
        if user_id is None or chat_id is None:
            raise ValueError("a button belongs to a user in a chat")
        entry = Entry(secrets.token_urlsafe(12), kind, user_id, chat_id, message_id, self.clock(), ttl_s, payload,
                      reusable, keep_text, audit_as)
        self._pending[entry.nonce] = entry
        while len(self._pending) > MAX_PENDING:
            nonce, old = self._pending.popitem(last=False)
            self._spend(nonce, "expired", old)
        return entry

    def bind(self, entry: Entry | None, message_id: int) -> None:
        """The message the button is on (also when it had to be sent anew)."""
        if entry is not None:
            entry.message_id = message_id

    def peek(self, nonce: str) -> Entry | None:
        return self._pending.get(nonce)

    def take(self, nonce: str, how: str = "used") -> Entry | None:
        entry = self._pending.pop(nonce, None)
        if entry is not None:
            self._spend(nonce, how, entry)
        return entry

    release = take  # a job ended: its Stop button is spent

    def spent(self, nonce: str) -> tuple[str, Entry] | None:
        return self._spent.get(nonce)

    def expired(self, entry: Entry) -> bool:
        return entry.ttl_s is not None and self.clock() - entry.created > entry.ttl_s

    def sweep(self) -> None:
        for nonce in [n for n, e in self._pending.items() if self.expired(e)]:
            self.take(nonce, "expired")

    def count(self, kind: Kind | str | None = None) -> int:
        prefix = kind.prefix if isinstance(kind, Kind) else kind
        return sum(1 for e in self._pending.values() if prefix is None or e.kind.prefix == prefix)

    def __len__(self) -> int:
        return len(self._pending)

    def _spend(self, nonce: str, how: str, entry: Entry) -> None:
        self._spent[nonce] = (how, entry)
        while len(self._spent) > MAX_SPENT:
            self._spent.popitem(last=False)

    # -- the press ----------------------------------------------------------------------------------------------------
    async def claim(self, deps: BotDeps, caller: Caller, query: Any, t: Callable[..., str], kind: Kind,
                    accept: Callable[[Entry, str], bool] | None = None) -> tuple[Entry, str] | None:
        """(entry, choice) for a valid press, taken unless reusable; None when refused (answered and audited).

        ``accept``: whether this entry takes this choice (a Stop button has no "pick the 3rd" choice); a choice it
        does not take is forged, and leaves the button as it was."""
        data = query.data or ""

        async def refuse(reason: str, key: str, entry: Entry | None = None) -> None:
            arguments: dict[str, Any] = {"reason": reason, "data": data[:64]}
            if entry is not None and entry.audit_as is not None:
                arguments["action"] = entry.audit_as[0]
            await deps.audit_async(caller.actor, kind.audit_action, arguments, "denied", reason)
            await query.answer(deps.redactor(t(key)), show_alert=True)

        parsed = kind.match(data)
        if parsed is None:
            await refuse("forged", "confirm.invalid")
            return None
        nonce, choice = parsed
        entry = self.peek(nonce)
        how = "pending"
        if entry is None:
            spent = self.spent(nonce)
            if spent is None:
                await refuse("forged", "confirm.invalid")
                return None
            how, entry = spent
            if how == "used":
                await refuse("replayed", "confirm.used")
                return None
        if entry.kind.prefix != kind.prefix:
            await refuse("forged", "confirm.invalid")
            return None
        message_id = query.message.message_id if query.message is not None else None
        if (entry.user_id, entry.chat_id) != (caller.user_id, caller.chat_id) or \
                entry.message_id is None or entry.message_id != message_id:
            await refuse("foreign", "confirm.not_yours", entry)  # not consumed: its owner can still use it
            return None
        if how == "expired" or self.expired(entry):
            self.take(nonce, "expired")
            await refuse("expired", entry.kind.expired_key, entry)
            await self._expire(deps, caller, query, t, entry)
            return None
        if accept is not None and not accept(entry, choice):
            await refuse("forged", "confirm.invalid")
            return None
        if not entry.reusable:
            self.take(nonce)
        return entry, choice

    async def _expire(self, deps: BotDeps, caller: Caller, query: Any, t: Callable[..., str], entry: Entry) -> None:
        if entry.audit_as is not None:
            action, arguments = entry.audit_as
            await deps.audit_async(caller.actor, action, arguments, "refused", "confirmation expired")
        bot = query.get_bot()
        try:
            if entry.keep_text:
                await bot.edit_message_reply_markup(chat_id=entry.chat_id, message_id=entry.message_id,
                                                    reply_markup=None)
            else:
                await bot.edit_message_text(deps.redactor(t(entry.kind.expired_key)), chat_id=entry.chat_id,
                                            message_id=entry.message_id, reply_markup=None)
        except TelegramError as exc:  # deleted meanwhile, or already without buttons: the answer says it
            log.info("expired button's message %s not edited: %s", entry.message_id, exc)


async def edit_or_send(bot: Any, deps: BotDeps, chat_id: int, message_id: int, text: str,
                       keyboard: Any = None) -> Any | None:
    """Edit a message the bot posted; the replacement when it had to be sent anew (None otherwise)."""
    try:
        await bot.edit_message_text(deps.redactor(text), chat_id=chat_id, message_id=message_id,
                                    reply_markup=keyboard)
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return None
        # The message is gone (deleted by the user): say it anew rather than lose the news.
        log.info("could not edit message %s (%s); sending instead", message_id, exc)
        return await send_text(bot, chat_id, deps.redactor(text), keyboard)
    except TelegramError as exc:  # a flood wait or an outage: the next edit carries the news
        log.warning("message %s not edited: %s", message_id, exc)
    return None
