"""reply_markup validation: what Telegram accepts for inline and reply keyboards, with its error texts. The 64-byte
callback_data limit matters most: the bot's confirmation nonces must fit in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.emulator.errors import BUTTON_DATA_INVALID, bad_request

MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
_BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay",
)
_MARKUP_JSON_ERROR = bad_request("can't parse reply keyboard markup JSON object")


@dataclass(frozen=True)
class InlineButton:
    row: int
    column: int
    text: str
    callback_data: str | None
    url: str | None
    raw: dict[str, Any]


def inline_buttons(markup: dict[str, Any] | None) -> list[InlineButton]:
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        InlineButton(r, c, b["text"], b.get("callback_data"), b.get("url"), b)
        for r, row in enumerate(markup["inline_keyboard"])
        for c, b in enumerate(row)
    ]


def validate_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Returns the markup to store, or None. Raises ApiError as Telegram would."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _MARKUP_JSON_ERROR
    if "inline_keyboard" in markup:
        return {"inline_keyboard": _validate_inline(markup["inline_keyboard"])}
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
        for row in rows:
            for button in row:
                text = button if isinstance(button, str) else button.get("text") if isinstance(button, dict) else None
                if not isinstance(text, str) or not text:
                    raise bad_request("can't parse keyboard button: Field \"text\" must be of type String")
        return dict(markup)
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return dict(markup)
    raise _MARKUP_JSON_ERROR


def _validate_inline(rows: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise bad_request("reply markup is too long")
    checked = []
    for row in rows:
        checked_row = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
            actions = [name for name in _BUTTON_ACTIONS if name in button]
            if not actions:
                raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise bad_request("can't parse inline keyboard button: Can't find field \"url\"")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not data or len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
                    raise BUTTON_DATA_INVALID
            if "url" in button and not _plausible_url(button["url"]):
                raise bad_request("BUTTON_URL_INVALID")
            checked_row.append(dict(button))
        if checked_row:
            checked.append(checked_row)
    return checked


def _plausible_url(url: Any) -> bool:
    return isinstance(url, str) and url.split(":", 1)[0].lower() in ("http", "https", "tg") and ":" in url
