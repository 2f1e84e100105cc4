"""The emulated Telegram world: the bot, users, chats with their message histories, the update queue, callback
queries, registered commands and uploaded files. Everything is in one World object (no module state) guarded by a
lock, because the server's loop and a test or terminal driver in another thread both change it; every change fires
the pulse so long polls and waits re-check."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.emulator.keyboards import InlineButton, inline_buttons
from bot.emulator.media import StoredFile
from bot.emulator.pulse import Pulse

T = TypeVar("T")

# Telegram never produces these unless asked for explicitly in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for name in ("last_name", "username", "language_code"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return body


@dataclass(frozen=True)
class BotIdentity:
    token: str
    id: int
    username: str
    first_name: str = "bsmart"
    can_join_groups: bool = True
    # Telegram's default privacy mode: in groups the bot sees commands, replies to it and mentions only.
    can_read_all_group_messages: bool = False

    def user(self) -> User:
        return User(self.id, self.first_name, username=self.username, language_code=None, is_bot=True)

    def me_json(self) -> dict[str, Any]:
        return {**self.user().to_json(), "can_join_groups": self.can_join_groups,
                "can_read_all_group_messages": self.can_read_all_group_messages, "supports_inline_queries": False,
                "can_connect_to_business": False, "has_main_web_app": False}


@dataclass
class Chat:
    id: int
    type: str  # private | group | supergroup | channel
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "type": self.type}
        for name in ("title", "username", "first_name", "last_name"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return body

    def full_info_json(self) -> dict[str, Any]:
        # Fields PTB's ChatFullInfo requires.
        return {**self.to_json(), "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False, "premium_subscription": False,
            "gifts_from_channels": False}}


@dataclass(frozen=True)
class Revision:
    """A message's content before an edit replaced it."""

    at: datetime
    text: str | None
    entities: tuple[dict[str, Any], ...]
    caption: str | None
    reply_markup: dict[str, Any] | None


@dataclass
class ChatMessage:
    chat: Chat
    message_id: int
    sender: User
    date: datetime
    text: str | None = None
    entities: tuple[dict[str, Any], ...] = ()
    caption: str | None = None
    caption_entities: tuple[dict[str, Any], ...] = ()
    reply_markup: dict[str, Any] | None = None
    photo: tuple[StoredFile, ...] = ()
    document: StoredFile | None = None
    reply_to: ChatMessage | None = None
    parse_mode: str | None = None
    edit_date: datetime | None = None
    history: list[Revision] = field(default_factory=list)
    deleted_at: datetime | None = None

    @property
    def from_bot(self) -> bool:
        return self.sender.is_bot

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def photo_bytes(self) -> bytes | None:
        """The original upload (the largest size)."""
        return self.photo[-1].data if self.photo else None

    @property
    def inline_keyboard(self) -> list[list[dict[str, Any]]]:
        return list((self.reply_markup or {}).get("inline_keyboard") or [])

    def buttons(self) -> list[InlineButton]:
        return inline_buttons(self.reply_markup)

    def button(self, *, text: str | None = None, callback_data: str | None = None) -> InlineButton:
        for button in self.buttons():
            if (text is None or button.text == text) and (callback_data is None or button.callback_data == callback_data):
                return button
        raise LookupError(f"no button text={text!r} callback_data={callback_data!r} in message {self.message_id}")

    def snapshot(self) -> Revision:
        return Revision(self.edit_date or self.date, self.text, self.entities, self.caption, self.reply_markup)

    def to_json(self, *, with_reply: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"message_id": self.message_id, "from": self.sender.to_json(),
                                "chat": self.chat.to_json(), "date": int(self.date.timestamp())}
        if self.reply_to is not None and with_reply:
            body["reply_to_message"] = self.reply_to.to_json(with_reply=False)
        if self.edit_date is not None:
            body["edit_date"] = int(self.edit_date.timestamp())
        if self.text is not None:
            body["text"] = self.text
            if self.entities:
                body["entities"] = [dict(e) for e in self.entities]
        if self.photo:
            body["photo"] = [size.photo_size_json() for size in self.photo]
        if self.document is not None:
            body["document"] = self.document.document_json()
        if self.caption:
            body["caption"] = self.caption
            if self.caption_entities:
                body["caption_entities"] = [dict(e) for e in self.caption_entities]
        # Only inline keyboards travel with a Message; reply keyboards live on the client.
        if self.inline_keyboard:
            body["reply_markup"] = {"inline_keyboard": self.inline_keyboard}
        return body


@dataclass(frozen=True)
class CallbackAnswer:
    at: datetime
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int


@dataclass
class CallbackQuery:
    id: str
    user: User
    message: ChatMessage
    data: str | None
    chat_instance: str
    created_at: float  # monotonic seconds, for the answer window
    answer: CallbackAnswer | None = None

    def to_json(self) -> dict[str, Any]:
        body = {"id": self.id, "from": self.user.to_json(), "message": self.message.to_json(),
                "chat_instance": self.chat_instance}
        if self.data is not None:
            body["data"] = self.data
        return body


@dataclass(frozen=True)
class Update:
    update_id: int
    kind: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


@dataclass(frozen=True)
class ChatAction:
    at: datetime
    chat_id: int
    action: str


@dataclass(frozen=True)
class ApiCall:
    at: datetime
    method: str
    params: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class CommandScope:
    type: str
    chat_id: int | None = None
    user_id: int | None = None


DEFAULT_SCOPE = CommandScope("default")


@dataclass
class World:
    bot: BotIdentity
    first_update_id: int = 1
    pulse: Pulse = field(default_factory=Pulse)
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: dict[int, User] = field(default_factory=dict)
    chats: dict[int, Chat] = field(default_factory=dict)
    messages: dict[int, list[ChatMessage]] = field(default_factory=dict)
    updates: deque[Update] = field(default_factory=deque)
    allowed_updates: frozenset[str] | None = None
    callbacks: dict[str, CallbackQuery] = field(default_factory=dict)
    commands: dict[tuple[CommandScope, str], list[dict[str, str]]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    blocked_by: set[int] = field(default_factory=set)
    chat_actions: list[ChatAction] = field(default_factory=list)
    calls: deque[ApiCall] = field(default_factory=lambda: deque(maxlen=10_000))
    webhook_url: str = ""
    poll_generation: int = 0
    polls_waiting: int = 0
    closing: bool = False
    _next_update_id: int = 0
    _next_callback: int = 0

    def __post_init__(self) -> None:
        self._next_update_id = self.first_update_id

    def changed(self) -> None:
        self.pulse.fire()

    def read(self, probe: Callable[[], T]) -> T:
        with self.lock:
            return probe()

    # --- people and chats ---------------------------------------------------------------------------------------

    def user(self, user_id: int, **details: Any) -> User:
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                user = User(user_id, details.pop("first_name", None) or f"User{user_id}")
                self.users[user_id] = user
            for name, value in details.items():
                if value is not None:
                    setattr(user, name, value)
            return user

    def private_chat(self, user: User) -> Chat:
        with self.lock:
            chat = self.chats.get(user.id)
            if chat is None:
                chat = Chat(user.id, "private", username=user.username, first_name=user.first_name,
                            last_name=user.last_name)
                self.chats[user.id] = chat
            return chat

    def group_chat(self, chat_id: int, chat_type: str = "supergroup", title: str | None = None) -> Chat:
        if chat_type not in ("group", "supergroup") or chat_id >= 0:
            raise ValueError("a group chat has type group or supergroup and a negative id")
        with self.lock:
            chat = self.chats.get(chat_id)
            if chat is None:
                chat = Chat(chat_id, chat_type, title=title or f"Group {chat_id}")
                self.chats[chat_id] = chat
            return chat

    def find_chat(self, ref: int | str) -> Chat | None:
        with self.lock:
            if isinstance(ref, int):
                return self.chats.get(ref)
            name = ref.removeprefix("@").lower()
            return next((c for c in self.chats.values() if c.type != "private" and (c.username or "").lower() == name),
                        None)

    # --- messages -----------------------------------------------------------------------------------------------

    def add_message(self, chat: Chat, sender: User, **content: Any) -> ChatMessage:
        with self.lock:
            history = self.messages.setdefault(chat.id, [])
            message_id = (history[-1].message_id + 1) if history else 1
            message = ChatMessage(chat, message_id, sender, utc_now(), **content)
            history.append(message)
        self.changed()
        return message

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        with self.lock:
            for message in reversed(self.messages.get(chat_id, [])):
                if message.message_id == message_id:
                    return message
            return None

    def chat_messages(self, chat_id: int | None = None) -> list[ChatMessage]:
        with self.lock:
            if chat_id is not None:
                return list(self.messages.get(chat_id, []))
            return sorted((m for ms in self.messages.values() for m in ms), key=lambda m: m.date)

    # --- updates ------------------------------------------------------------------------------------------------

    def enqueue(self, kind: str, payload: dict[str, Any]) -> Update:
        with self.lock:
            update = Update(self._next_update_id, kind, payload)
            self._next_update_id += 1
            self.updates.append(update)
        self.changed()
        return update

    def confirm(self, offset: int) -> None:
        """Telegram's offset: positive forgets every update below it; negative keeps only the last -offset."""
        with self.lock:
            if offset > 0:
                while self.updates and self.updates[0].update_id < offset:
                    self.updates.popleft()
            elif offset < 0:
                while len(self.updates) > -offset:
                    self.updates.popleft()

    def deliverable(self, limit: int) -> list[Update]:
        with self.lock:
            allowed = self.allowed_updates
            if allowed is not None:
                # Telegram never creates updates of types the bot opted out of; dropping them here is the same.
                kept = [u for u in self.updates if u.kind in allowed]
            else:
                kept = [u for u in self.updates if u.kind not in OPT_IN_UPDATES]
            if len(kept) != len(self.updates):
                self.updates = deque(kept)
            return kept[:limit]

    def drop_pending(self) -> None:
        with self.lock:
            self.updates.clear()

    def begin_poll(self) -> int:
        with self.lock:
            self.poll_generation += 1
            generation = self.poll_generation
        self.changed()
        return generation

    # --- callbacks ----------------------------------------------------------------------------------------------

    def new_callback(self, user: User, message: ChatMessage, data: str | None, now: float) -> CallbackQuery:
        with self.lock:
            self._next_callback += 1
            query_id = str(4_611_686_018_427_387_904 + self._next_callback * 7_919)
            chat_instance = str((message.chat.id * 2_654_435_761) % (2**63))
            query = CallbackQuery(query_id, user, message, data, chat_instance, now)
            self.callbacks[query_id] = query
            return query

    def record_call(self, method: str, params: dict[str, Any], error: str | None) -> None:
        with self.lock:
            self.calls.append(ApiCall(utc_now(), method, params, error))
