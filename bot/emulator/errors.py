"""Bot API errors with the status codes and description texts Telegram uses, so a client's error handling
(PTB maps 400 -> BadRequest, 401/404 -> InvalidToken, 403 -> Forbidden, 409 -> Conflict, 429 -> RetryAfter)
is exercised exactly as in production."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiError(Exception):
    error_code: int
    description: str
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body

    def __str__(self) -> str:
        return f"{self.error_code} {self.description}"


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def cant_parse_entities(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def forbidden(detail: str) -> ApiError:
    return ApiError(403, f"Forbidden: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


UNAUTHORIZED = ApiError(401, "Unauthorized")
NOT_FOUND = ApiError(404, "Not Found")
CHAT_NOT_FOUND = bad_request("chat not found")
MESSAGE_TEXT_EMPTY = bad_request("message text is empty")
MESSAGE_TOO_LONG = bad_request("message is too long")
CAPTION_TOO_LONG = bad_request("message caption is too long")
MESSAGE_NOT_MODIFIED = bad_request(
    "message is not modified: specified new message content and reply markup are exactly the same as a current "
    "content and reply markup of the message"
)
MESSAGE_TO_EDIT_NOT_FOUND = bad_request("message to edit not found")
MESSAGE_TO_DELETE_NOT_FOUND = bad_request("message to delete not found")
MESSAGE_CANT_BE_EDITED = bad_request("message can't be edited")
MESSAGE_CANT_BE_DELETED = bad_request("message can't be deleted")
NO_TEXT_TO_EDIT = bad_request("there is no text in the message to edit")
NO_CAPTION_TO_EDIT = bad_request("there is no caption in the message to edit")
REPLY_NOT_FOUND = bad_request("message to be replied not found")
BUTTON_DATA_INVALID = bad_request("BUTTON_DATA_INVALID")
QUERY_TOO_OLD = bad_request("query is too old and response timeout expired or query ID is invalid")
BOT_COMMAND_INVALID = bad_request("BOT_COMMAND_INVALID")
BOT_BLOCKED = forbidden("bot was blocked by the user")
CONFLICT_OTHER_POLL = ApiError(
    409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = ApiError(
    409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
