"""The Bot API methods over the World: each takes decoded parameters and returns the `result` Telegram would, or
raises ApiError with Telegram's code and text."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.emulator import errors as E
from bot.emulator.flood import LIMITED_METHODS, FloodControl
from bot.emulator.formatting import FormattedText, format_text
from bot.emulator.keyboards import validate_reply_markup
from bot.emulator.media import StoredFile, make_document, make_photo
from bot.emulator.params import Params, Upload
from bot.emulator.state import (
    DEFAULT_SCOPE,
    CallbackAnswer,
    ChatAction,
    ChatMessage,
    CommandScope,
    Revision,
    World,
    utc_now,
)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_POLL_SECONDS = 50
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
SCOPE_TYPES = frozenset({
    "default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat", "chat_administrators",
    "chat_member",
})
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_MARKUP_ERROR = E.bad_request("can't parse reply keyboard markup JSON object")
_ENTITIES_ERROR = E.bad_request("can't parse entities JSON object")

Method = Callable[[Params], Awaitable[Any]]


@dataclass
class BotApi:
    world: World
    flood: FloodControl | None = None
    callback_answer_window: float = 15.0
    clock: Callable[[], float] = time.monotonic
    methods: dict[str, Method] = field(init=False)

    def __post_init__(self) -> None:
        self.methods = {name.lower(): getattr(self, "m_" + name) for name in (
            "getMe", "logOut", "close", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo",
            "sendMessage", "editMessageText", "editMessageCaption", "editMessageReplyMarkup", "deleteMessage",
            "deleteMessages", "answerCallbackQuery", "sendPhoto", "sendDocument", "getFile", "sendChatAction",
            "setMyCommands", "getMyCommands", "deleteMyCommands", "getChat",
        )}

    async def call(self, method: str, params: Params) -> Any:
        handler = self.methods.get(method.lower())
        if handler is None:
            raise E.NOT_FOUND
        return await handler(params)

    # --- shared checks ------------------------------------------------------------------------------------------

    def _chat(self, params: Params) -> Any:
        chat = self.world.find_chat(params.chat_ref())
        if chat is None:
            raise E.CHAT_NOT_FOUND
        if chat.type == "private" and chat.id in self.world.blocked_by:
            raise E.BOT_BLOCKED
        return chat

    def _admit(self, method: str, chat: Any) -> None:
        if self.flood is not None and method in LIMITED_METHODS:
            self.flood.admit(chat.id, chat.is_group)

    def _text(self, params: Params, name: str = "text") -> FormattedText:
        return format_text(params.get_str(name) or "", params.get_str("parse_mode"),
                           params.get_json("entities", _ENTITIES_ERROR), limit=MAX_TEXT,
                           empty_error=E.MESSAGE_TEXT_EMPTY, too_long_error=E.MESSAGE_TOO_LONG)

    def _caption(self, params: Params) -> FormattedText | None:
        if not params.has("caption"):
            return None
        return format_text(params.get_str("caption") or "", params.get_str("parse_mode"),
                           params.get_json("caption_entities", _ENTITIES_ERROR), limit=MAX_CAPTION,
                           empty_error=E.bad_request("message caption is empty"), too_long_error=E.CAPTION_TOO_LONG)

    def _reply_to(self, params: Params, chat_id: int) -> ChatMessage | None:
        reply = params.get_json("reply_parameters", E.bad_request("can't parse reply parameters JSON object"))
        message_id = reply.get("message_id") if isinstance(reply, dict) else params.get_int("reply_to_message_id")
        if not message_id:
            return None
        target = self.world.message(chat_id, int(message_id))
        if target is None or target.deleted:
            allow = (reply or {}).get("allow_sending_without_reply") if isinstance(reply, dict) else None
            if allow or params.get_bool("allow_sending_without_reply"):
                return None
            raise E.REPLY_NOT_FOUND
        return target

    def _own_message(self, params: Params, missing: E.ApiError) -> ChatMessage:
        if params.has("inline_message_id"):
            raise E.bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        message_id = params.get_int("message_id", required=True)
        message = self.world.message(chat.id, message_id or 0)
        if message is None or message.deleted:
            raise missing
        if not message.from_bot:
            raise E.MESSAGE_CANT_BE_EDITED
        return message

    # --- identity, webhooks, updates ----------------------------------------------------------------------------

    async def m_getMe(self, params: Params) -> dict[str, Any]:
        return self.world.bot.me_json()

    async def m_logOut(self, params: Params) -> bool:
        return True

    async def m_close(self, params: Params) -> bool:
        return True

    async def m_setWebhook(self, params: Params) -> bool:
        # Recorded only: the emulator never calls out, so a set webhook just blocks getUpdates as Telegram's does.
        url = params.get_str("url") or ""
        with self.world.lock:
            self.world.webhook_url = url
            if params.get_bool("drop_pending_updates"):
                self.world.drop_pending()
        return True

    async def m_deleteWebhook(self, params: Params) -> bool:
        with self.world.lock:
            self.world.webhook_url = ""
            if params.get_bool("drop_pending_updates"):
                self.world.drop_pending()
        return True

    async def m_getWebhookInfo(self, params: Params) -> dict[str, Any]:
        with self.world.lock:
            return {"url": self.world.webhook_url, "has_custom_certificate": False,
                    "pending_update_count": len(self.world.updates)}

    async def m_getUpdates(self, params: Params) -> list[dict[str, Any]]:
        world = self.world
        if world.webhook_url:
            raise E.CONFLICT_WEBHOOK
        allowed = params.get_json("allowed_updates", E.bad_request("can't parse allowed updates JSON object"))
        if isinstance(allowed, list):
            # An empty list means "all but the opt-in kinds", which is also the default.
            with world.lock:
                world.allowed_updates = frozenset(map(str, allowed)) if allowed else None
        offset = params.get_int("offset", 0) or 0
        limit = min(max(params.get_int("limit", 100) or 100, 1), 100)
        timeout = min(max(params.get_float("timeout", 0.0), 0.0), MAX_POLL_SECONDS)
        world.confirm(offset)
        # A newer poll ends an older one with 409, as Telegram does with two bot instances.
        generation = world.begin_poll()

        def probe() -> tuple[str, list[Any]] | None:
            if world.poll_generation != generation:
                return ("conflict", [])
            if world.closing:
                return ("closing", [])
            ready = world.deliverable(limit)
            return ("ready", ready) if ready else None

        if timeout:
            with world.lock:
                world.polls_waiting += 1
            world.changed()
            try:
                outcome = await world.pulse.wait_until(probe, timeout)
            finally:
                with world.lock:
                    world.polls_waiting -= 1
        else:
            outcome = probe()
        if outcome is not None and outcome[0] == "conflict":
            raise E.CONFLICT_OTHER_POLL
        return [update.to_json() for update in (outcome[1] if outcome else [])]

    # --- messages -----------------------------------------------------------------------------------------------

    async def m_sendMessage(self, params: Params) -> dict[str, Any]:
        chat = self._chat(params)
        formatted = self._text(params)
        markup = validate_reply_markup(params.get_json("reply_markup", _MARKUP_ERROR))
        reply_to = self._reply_to(params, chat.id)
        self._admit("sendmessage", chat)
        message = self.world.add_message(chat, self.world.bot.user(), text=formatted.text,
                                         entities=formatted.entities, reply_markup=markup, reply_to=reply_to,
                                         parse_mode=params.get_str("parse_mode"))
        return message.to_json()

    async def m_editMessageText(self, params: Params) -> dict[str, Any]:
        message = self._own_message(params, E.MESSAGE_TO_EDIT_NOT_FOUND)
        if message.text is None:
            raise E.NO_TEXT_TO_EDIT
        formatted = self._text(params)
        markup = validate_reply_markup(params.get_json("reply_markup", _MARKUP_ERROR))
        return self._apply_edit(message, "editmessagetext", text=formatted.text, entities=formatted.entities,
                                reply_markup=markup)

    async def m_editMessageCaption(self, params: Params) -> dict[str, Any]:
        message = self._own_message(params, E.MESSAGE_TO_EDIT_NOT_FOUND)
        if message.text is not None:
            raise E.NO_CAPTION_TO_EDIT
        caption = self._caption(params)
        markup = validate_reply_markup(params.get_json("reply_markup", _MARKUP_ERROR))
        return self._apply_edit(message, "editmessagecaption", caption=caption.text if caption else None,
                                caption_entities=caption.entities if caption else (), reply_markup=markup)

    async def m_editMessageReplyMarkup(self, params: Params) -> dict[str, Any]:
        message = self._own_message(params, E.MESSAGE_TO_EDIT_NOT_FOUND)
        markup = validate_reply_markup(params.get_json("reply_markup", _MARKUP_ERROR))
        return self._apply_edit(message, "editmessagereplymarkup", reply_markup=markup)

    def _apply_edit(self, message: ChatMessage, method: str, **changes: Any) -> dict[str, Any]:
        with self.world.lock:
            before = message.snapshot()
            # Only an inline keyboard can be attached by an edit; anything else means "no keyboard".
            markup = changes.get("reply_markup")
            changes["reply_markup"] = markup if markup and markup.get("inline_keyboard") else None
            after = Revision(before.at, changes.get("text", before.text), changes.get("entities", before.entities),
                             changes.get("caption", before.caption), changes["reply_markup"])
            if (after.text, after.entities, after.caption, _keyboard(after.reply_markup)) == (
                    before.text, before.entities, before.caption, _keyboard(before.reply_markup)):
                raise E.MESSAGE_NOT_MODIFIED
            self._admit(method, message.chat)
            message.history.append(before)
            for name, value in changes.items():
                setattr(message, name, value)
            message.edit_date = utc_now()
            body = message.to_json()
        self.world.changed()
        return body

    async def m_deleteMessage(self, params: Params) -> bool:
        chat = self._chat(params)
        self._delete(chat, params.get_int("message_id", required=True) or 0)
        self.world.changed()
        return True

    async def m_deleteMessages(self, params: Params) -> bool:
        chat = self._chat(params)
        ids = params.get_json("message_ids", E.bad_request("can't parse message identifiers JSON object"))
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise E.bad_request("message_ids must be a non-empty list of at most 100 identifiers")
        for message_id in ids:
            try:
                self._delete(chat, int(message_id))
            except E.ApiError:
                pass  # deleteMessages skips messages that cannot be deleted
        self.world.changed()
        return True

    def _delete(self, chat: Any, message_id: int) -> None:
        with self.world.lock:
            message = self.world.message(chat.id, message_id)
            if message is None or message.deleted:
                raise E.MESSAGE_TO_DELETE_NOT_FOUND
            # A bot deletes its own messages anywhere, a user's only in a private chat (admin rights not modelled).
            if not message.from_bot and chat.type != "private":
                raise E.MESSAGE_CANT_BE_DELETED
            message.deleted_at = utc_now()

    async def m_answerCallbackQuery(self, params: Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        text = params.get_str("text")
        if text is not None and len(text) > 200:
            raise E.bad_request("MESSAGE_TOO_LONG")
        with self.world.lock:
            query = self.world.callbacks.get(query_id)
            if query is None or query.answer is not None or self.clock() - query.created_at > self.callback_answer_window:
                raise E.QUERY_TOO_OLD
            query.answer = CallbackAnswer(utc_now(), text, params.get_bool("show_alert"), params.get_str("url"),
                                          params.get_int("cache_time", 0) or 0)
        self.world.changed()
        return True

    # --- files --------------------------------------------------------------------------------------------------

    def _upload(self, params: Params, name: str) -> Upload | StoredFile:
        if name in params.uploads:
            return params.uploads[name]
        ref = params.get_str(name) or ""
        if ref.startswith("attach://"):
            upload = params.uploads.get(ref[len("attach://"):])
            if upload is None:
                raise E.bad_request(f"wrong {name} attachment")
            return upload
        if not ref:
            raise E.bad_request(f"there is no {name} in the request")
        stored = self.world.files.get(ref)
        if stored is None:
            # URLs included: the emulator never fetches anything from the network.
            raise E.bad_request("wrong file identifier/HTTP URL specified")
        return stored

    async def m_sendPhoto(self, params: Params) -> dict[str, Any]:
        chat = self._chat(params)
        source = self._upload(params, "photo")
        if isinstance(source, StoredFile):
            if source.kind != "photo":
                raise E.bad_request(f"can't use file of type {source.kind.capitalize()} as Photo")
            sizes = tuple(f for f in self.world.files.values() if f.file_id == source.file_id)
        else:
            sizes = tuple(make_photo(source.data, source.file_name))
        return self._send_file(params, chat, "sendphoto", photo=sizes)

    async def m_sendDocument(self, params: Params) -> dict[str, Any]:
        chat = self._chat(params)
        source = self._upload(params, "document")
        document = source if isinstance(source, StoredFile) else make_document(
            source.data, source.file_name, source.content_type)
        return self._send_file(params, chat, "senddocument", document=document)

    def _send_file(self, params: Params, chat: Any, method: str, **media: Any) -> dict[str, Any]:
        caption = self._caption(params)
        markup = validate_reply_markup(params.get_json("reply_markup", _MARKUP_ERROR))
        reply_to = self._reply_to(params, chat.id)
        self._admit(method, chat)
        with self.world.lock:
            for stored in media.get("photo", ()) or (media["document"],):
                self.world.files[stored.file_id] = stored
        message = self.world.add_message(
            chat, self.world.bot.user(), caption=caption.text if caption else None,
            caption_entities=caption.entities if caption else (), reply_markup=markup, reply_to=reply_to,
            parse_mode=params.get_str("parse_mode"), **media)
        return message.to_json()

    async def m_getFile(self, params: Params) -> dict[str, Any]:
        stored = self.world.files.get(params.get_str("file_id") or "")
        if stored is None:
            raise E.bad_request("invalid file_id")
        return stored.file_json()

    def file_by_path(self, path: str) -> StoredFile | None:
        with self.world.lock:
            return next((f for f in self.world.files.values() if f.file_path == path), None)

    async def m_sendChatAction(self, params: Params) -> bool:
        chat = self._chat(params)
        action = params.get_str("action") or ""
        if action not in CHAT_ACTIONS:
            raise E.bad_request("wrong parameter action in request")
        with self.world.lock:
            self.world.chat_actions.append(ChatAction(utc_now(), chat.id, action))
        self.world.changed()
        return True

    # --- commands and chats -------------------------------------------------------------------------------------

    def _scope(self, params: Params) -> CommandScope:
        raw = params.get_json("scope", E.bad_request("can't parse BotCommandScope JSON object"))
        if raw is None:
            return DEFAULT_SCOPE
        if not isinstance(raw, dict) or raw.get("type") not in SCOPE_TYPES:
            raise E.bad_request("wrong BotCommandScope type specified")
        scope_type = raw["type"]
        chat_id = user_id = None
        if scope_type in ("chat", "chat_administrators", "chat_member"):
            chat = self.world.find_chat(_chat_id(raw.get("chat_id")))
            if chat is None:
                raise E.CHAT_NOT_FOUND
            chat_id = chat.id
        if scope_type == "chat_member":
            user_id = int(raw.get("user_id") or 0)
            if user_id not in self.world.users:
                raise E.bad_request("user not found")
        return CommandScope(scope_type, chat_id, user_id)

    def _language(self, params: Params) -> str:
        language = params.get_str("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise E.bad_request("invalid language code specified")
        return language

    async def m_setMyCommands(self, params: Params) -> bool:
        commands = params.get_json("commands", E.bad_request("can't parse commands JSON object"))
        if not isinstance(commands, list):
            raise E.bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise E.bad_request("BOT_COMMANDS_TOO_MUCH")
        checked = []
        for entry in commands:
            if not isinstance(entry, dict) or not _COMMAND.fullmatch(str(entry.get("command", ""))):
                raise E.BOT_COMMAND_INVALID
            description = entry.get("description")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise E.bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            checked.append({"command": entry["command"], "description": description})
        key = (self._scope(params), self._language(params))
        with self.world.lock:
            if checked:
                self.world.commands[key] = checked
            else:
                self.world.commands.pop(key, None)
        self.world.changed()
        return True

    async def m_getMyCommands(self, params: Params) -> list[dict[str, str]]:
        key = (self._scope(params), self._language(params))
        with self.world.lock:
            return [dict(c) for c in self.world.commands.get(key, [])]

    async def m_deleteMyCommands(self, params: Params) -> bool:
        key = (self._scope(params), self._language(params))
        with self.world.lock:
            self.world.commands.pop(key, None)
        self.world.changed()
        return True

    async def m_getChat(self, params: Params) -> dict[str, Any]:
        chat = self.world.find_chat(params.chat_ref())
        if chat is None:
            raise E.CHAT_NOT_FOUND
        return chat.full_info_json()


def _keyboard(markup: dict[str, Any] | None) -> list[Any]:
    return list((markup or {}).get("inline_keyboard") or [])


def _chat_id(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    text = str(value or "")
    try:
        return int(text)
    except ValueError:
        return text
