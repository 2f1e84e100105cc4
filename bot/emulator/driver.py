"""The emulator as tests and the terminal demo use it: start a local Bot API, play users who type and press
buttons, and read what the bot did.

    async with TelegramEmulator() as tg:              # in the test's own loop
        app = Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
        ...
        tg.send_text(42, "/start")
        reply = await tg.wait_for_sent(42)

    with TelegramEmulator() as tg:                    # on a background thread, for synchronous callers
        tg.send_text(42, "/start")
        reply = tg.wait_for_sent_blocking(42)
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from bot.emulator import errors as E
from bot.emulator.api import MAX_TEXT, BotApi
from bot.emulator.flood import FloodControl, FloodPolicy
from bot.emulator.formatting import detect_entities
from bot.emulator.media import StoredFile
from bot.emulator.server import LOCALHOST, EmulatorServer, Fault
from bot.emulator.state import (
    DEFAULT_SCOPE,
    ApiCall,
    BotIdentity,
    CallbackAnswer,
    CallbackQuery,
    Chat,
    ChatAction,
    ChatMessage,
    CommandScope,
    User,
    World,
    utc_now,
)

T = TypeVar("T")

DEFAULT_TOKEN = "7000000001:AAEmulatorTokenForLocalTestsOnly0000000"
DEFAULT_SUPERGROUP_ID = -1001000000001
DEFAULT_GROUP_ID = -400000001
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@([A-Za-z0-9_]{3,32}))?")


class TelegramEmulator:
    def __init__(self, token: str = DEFAULT_TOKEN, *, bot_username: str = "bsmart_test_bot",
                 bot_name: str = "bsmart", read_all_group_messages: bool = False,
                 flood: FloodPolicy | None = None, callback_answer_window: float = 15.0, port: int = 0,
                 first_update_id: int = 1) -> None:
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 7_000_000_001
        self.world = World(BotIdentity(token, bot_id, bot_username, bot_name,
                                       can_read_all_group_messages=read_all_group_messages),
                           first_update_id=first_update_id)
        self.api = BotApi(self.world, FloodControl(flood) if flood else None, callback_answer_window)
        self.server = EmulatorServer(self.api, LOCALHOST, port)
        self._consumed: set[tuple[int, int]] = set()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> None:
        """Serve from a private loop on a daemon thread; the driver methods stay callable from any thread."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread_loop = loop
        self._thread = threading.Thread(target=run, name="telegram-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the Telegram emulator did not start")
        if failure:
            raise failure[0]

    def stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        self._thread_loop = self._thread = None

    def __enter__(self) -> TelegramEmulator:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    @property
    def token(self) -> str:
        return self.world.bot.token

    @property
    def bot(self) -> BotIdentity:
        return self.world.bot

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        """For ApplicationBuilder.base_url: PTB appends the token and the method."""
        return f"http://{LOCALHOST}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}/file/bot"

    # --- people and chats ---------------------------------------------------------------------------------------

    def user(self, user_id: int, *, first_name: str | None = None, last_name: str | None = None,
             username: str | None = None, language_code: str | None = None) -> User:
        return self.world.user(user_id, first_name=first_name, last_name=last_name, username=username,
                               language_code=language_code)

    def open_private_chat(self, user_id: int) -> Chat:
        """The user has started the bot without typing anything yet, so the bot may message them."""
        return self.world.private_chat(self.world.user(user_id))

    def group(self, chat_id: int = DEFAULT_SUPERGROUP_ID, *, title: str | None = None,
              chat_type: str = "supergroup") -> Chat:
        return self.world.group_chat(chat_id, chat_type, title)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them fail with 403 until they write again. Like Telegram, the bot
        gets a my_chat_member update for each change."""
        chat = self.open_private_chat(user_id)
        with self.world.lock:
            if user_id in self.world.blocked_by:
                return
            self.world.blocked_by.add(user_id)
        self._membership_changed(chat, user_id, "member", "kicked")

    def _membership_changed(self, chat: Chat, user_id: int, old: str, new: str) -> None:
        bot = self.world.bot.user().to_json()
        member = {"kicked": {"status": "kicked", "user": bot, "until_date": 0}, "member": {"status": "member", "user": bot}}
        self.world.enqueue("my_chat_member", {
            "chat": chat.to_json(), "from": self.world.user(user_id).to_json(), "date": int(utc_now().timestamp()),
            "old_chat_member": member[old], "new_chat_member": member[new]})

    # --- what users do ------------------------------------------------------------------------------------------

    def send_text(self, user_id: int, text: str, chat_id: int | None = None, chat_type: str = "private", *,
                  reply_to: ChatMessage | None = None) -> ChatMessage:
        """A user types `text` in a private chat (the default) or a group, as a Telegram client would send it:
        commands, mentions, links and hashtags get their entities. Returns the message as stored in the chat."""
        if not text.strip() or len(text) > MAX_TEXT:
            raise ValueError("a Telegram client sends 1 to 4096 characters")
        user = self.world.user(user_id)
        if chat_type == "private":
            if chat_id not in (None, user_id):
                raise ValueError("a private chat's id is the user's id")
            chat = self.world.private_chat(user)
            with self.world.lock:
                was_blocked = user_id in self.world.blocked_by
                self.world.blocked_by.discard(user_id)
            if was_blocked:
                self._membership_changed(chat, user_id, "kicked", "member")
        else:
            default = DEFAULT_GROUP_ID if chat_type == "group" else DEFAULT_SUPERGROUP_ID
            chat = self.world.group_chat(chat_id if chat_id is not None else default, chat_type)
        message = self.world.add_message(chat, user, text=text, entities=detect_entities(text), reply_to=reply_to)
        if self._bot_sees(chat, text, reply_to):
            self.world.enqueue("message", message.to_json())
        return message

    def edit_text(self, message: ChatMessage, text: str) -> ChatMessage:
        """The user edits a message they sent; the bot gets an edited_message update (PTB's CommandHandler
        reacts to those too, which is why a bot must not trust a command twice)."""
        if message.from_bot:
            raise ValueError("a user can only edit their own messages")
        if not text.strip() or len(text) > MAX_TEXT:
            raise ValueError("a Telegram client sends 1 to 4096 characters")
        with self.world.lock:
            message.history.append(message.snapshot())
            message.text = text
            message.entities = detect_entities(text)
            message.edit_date = utc_now()
            payload = message.to_json()
        if self._bot_sees(message.chat, text, message.reply_to):
            self.world.enqueue("edited_message", payload)
        else:
            self.world.changed()
        return message

    def press_button(self, user_id: int, message: ChatMessage, callback_data: str | None = None, *,
                     text: str | None = None, strict: bool = True) -> CallbackQuery:
        """A user presses an inline button of a bot message, chosen by callback_data and/or its text.

        strict=False forges the press: any data, any message, any user, which a modified client could send."""
        with self.world.lock:
            current = self.world.message(message.chat.id, message.message_id) or message
            data = callback_data
            if strict:
                if current.deleted or not current.from_bot:
                    raise LookupError(f"message {message.message_id} has no buttons to press")
                if current.chat.type == "private" and current.chat.id != user_id:
                    raise PermissionError("only the chat's own user can see its buttons")
                button = current.button(text=text, callback_data=callback_data)
                if button.callback_data is None:
                    raise ValueError(f"button {button.text!r} opens a URL; it sends no callback")
                data = button.callback_data
            query = self.world.new_callback(self.world.user(user_id), current, data, self.api.clock())
        self.world.enqueue("callback_query", query.to_json())
        return query

    def _bot_sees(self, chat: Chat, text: str, reply_to: ChatMessage | None) -> bool:
        bot = self.world.bot
        if chat.type == "private" or bot.can_read_all_group_messages:
            return True
        if reply_to is not None and reply_to.sender.id == bot.id:
            return True
        if f"@{bot.username.lower()}" in text.lower():
            return True
        return any(m.group(1) is None or m.group(1).lower() == bot.username.lower() for m in _COMMAND.finditer(text))

    # --- what the bot did ---------------------------------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[ChatMessage]:
        """Every message the bot sent (deleted ones included, see .deleted), oldest first."""
        return [m for m in self.world.chat_messages(chat_id) if m.from_bot]

    def messages(self, chat_id: int) -> list[ChatMessage]:
        return self.world.chat_messages(chat_id)

    def photos(self, chat_id: int | None = None) -> list[bytes]:
        return [m.photo_bytes for m in self.sent(chat_id) if m.photo_bytes is not None]

    def documents(self, chat_id: int | None = None) -> list[StoredFile]:
        return [m.document for m in self.sent(chat_id) if m.document is not None]

    def callback_queries(self) -> list[CallbackQuery]:
        with self.world.lock:
            return list(self.world.callbacks.values())

    def unanswered_callbacks(self) -> list[CallbackQuery]:
        return [q for q in self.callback_queries() if q.answer is None]

    def chat_actions(self, chat_id: int | None = None) -> list[ChatAction]:
        with self.world.lock:
            return [a for a in self.world.chat_actions if chat_id is None or a.chat_id == chat_id]

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self.world.lock:
            return [c for c in self.world.calls if method is None or c.method.lower() == method.lower()]

    def pending_updates(self) -> int:
        with self.world.lock:
            return len(self.world.updates)

    def commands(self, scope: CommandScope = DEFAULT_SCOPE, language_code: str = "") -> list[dict[str, str]]:
        with self.world.lock:
            return [dict(c) for c in self.world.commands.get((scope, language_code), [])]

    def menu_for(self, user_id: int, chat_id: int | None = None, language_code: str | None = None) -> list[dict[str, str]]:
        """The command menu this user's client would show, by Telegram's scope precedence (admin scopes aside)."""
        chat_id = user_id if chat_id is None else chat_id
        user = self.world.users.get(user_id)
        language = language_code if language_code is not None else (user.language_code if user else "") or ""
        if chat_id == user_id:
            scopes = [CommandScope("chat", chat_id), CommandScope("all_private_chats"), DEFAULT_SCOPE]
        else:
            scopes = [CommandScope("chat_member", chat_id, user_id), CommandScope("chat", chat_id),
                      CommandScope("all_group_chats"), DEFAULT_SCOPE]
        with self.world.lock:
            for scope in scopes:
                for key in ((scope, language), (scope, "")):
                    if self.world.commands.get(key):
                        return [dict(c) for c in self.world.commands[key]]
        return []

    # --- waiting ------------------------------------------------------------------------------------------------

    def _take_unread(self, chat_id: int | None, predicate: Callable[[ChatMessage], bool] | None) -> ChatMessage | None:
        with self.world.lock:
            for message in self.sent(chat_id):
                key = (message.chat.id, message.message_id)
                if key not in self._consumed and (predicate is None or predicate(message)):
                    self._consumed.add(key)
                    return message
        return None

    async def wait_for(self, probe: Callable[[], T | None], timeout: float = 5.0, what: str = "condition") -> T:
        """The first truthy probe() result, re-checked on every change in the emulated world."""
        result = await self.world.pulse.wait_until(lambda: self.world.read(probe), timeout)
        if result is None:
            raise TimeoutError(f"{what} not met within {timeout} s")
        return result

    async def wait_for_sent(self, chat_id: int | None = None, predicate: Callable[[ChatMessage], bool] | None = None,
                            timeout: float = 5.0) -> ChatMessage:
        """The oldest bot message in the chat (any chat if None) not yet returned by a wait and matching predicate."""
        return await self.wait_for(lambda: self._take_unread(chat_id, predicate), timeout,
                                   f"a bot message in chat {chat_id} ({self._summary(chat_id)})")

    def wait_for_sent_blocking(self, chat_id: int | None = None,
                               predicate: Callable[[ChatMessage], bool] | None = None,
                               timeout: float = 5.0) -> ChatMessage:
        result = self.world.pulse.wait_until_blocking(lambda: self._take_unread(chat_id, predicate), timeout)
        if result is None:
            raise TimeoutError(f"no bot message in chat {chat_id} within {timeout} s ({self._summary(chat_id)})")
        return result

    async def wait_for_edit(self, message: ChatMessage, predicate: Callable[[ChatMessage], bool] | None = None,
                            timeout: float = 5.0) -> ChatMessage:
        def probe() -> ChatMessage | None:
            current = self.world.message(message.chat.id, message.message_id)
            if current is not None and current.history and (predicate is None or predicate(current)):
                return current
            return None

        return await self.wait_for(probe, timeout, f"an edit of message {message.message_id}")

    async def wait_for_answer(self, query: CallbackQuery, timeout: float = 5.0) -> CallbackAnswer:
        return await self.wait_for(lambda: self.world.callbacks[query.id].answer, timeout,
                                   f"an answer to callback query {query.id}")

    async def wait_for_poll(self, timeout: float = 5.0) -> None:
        """Until the bot has a getUpdates waiting, so an update injected next is delivered by the open poll."""
        await self.wait_for(lambda: self.world.polls_waiting > 0 or None, timeout, "a waiting getUpdates call")

    def _summary(self, chat_id: int | None) -> str:
        texts = [(m.text or m.caption or "<media>")[:40] for m in self.sent(chat_id)]
        return f"sent so far: {texts}" if texts else "nothing sent"

    # --- making Telegram misbehave ------------------------------------------------------------------------------

    def fail_next(self, method: str, error_code: int = 500, description: str = "Internal Server Error", *,
                  times: int = 1, retry_after: int | None = None, delay: float = 0.0) -> None:
        """The next `times` calls of `method` ("*" for any) fail with this status and description."""
        self.server.add_fault(Fault(method.lower(), E.ApiError(error_code, description, retry_after), delay, times))

    def set_flood_policy(self, policy: FloodPolicy | None) -> None:
        """Switch Telegram's flood limits on (fresh buckets) or off while running."""
        self.api.flood = FloodControl(policy) if policy else None

    def slow_down(self, method: str, delay: float, *, times: int = 1) -> None:
        self.server.add_fault(Fault(method.lower(), None, delay, times))

    def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "bot": self.world.bot.me_json(), "chats": len(self.world.chats),
                "pending_updates": self.pending_updates()}
