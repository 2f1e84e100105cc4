"""Uploaded files: what Telegram checks about a photo, the sizes it reports, and file ids. Unlike Telegram the
original bytes are kept unchanged (Telegram re-encodes photos as JPEG) so a test can decode exactly what the bot
rendered."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bot.emulator.errors import ApiError, bad_request

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_PHOTO_SIDE = 2560
THUMBNAIL_SIDE = 90
FILE_TOO_BIG = ApiError(413, "Request Entity Too Large")
IMAGE_PROCESS_FAILED = bad_request("IMAGE_PROCESS_FAILED")
PHOTO_INVALID_DIMENSIONS = bad_request("PHOTO_INVALID_DIMENSIONS")
EMPTY_FILE = bad_request("file must be non-empty")


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # "photo" | "document"
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def file_path(self) -> str:
        suffix = (self.file_name or "").rpartition(".")[2] if self.file_name and "." in self.file_name else "bin"
        return f"{self.kind}s/{self.file_unique_id}.{suffix}"

    def photo_size_json(self) -> dict[str, object]:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id, "width": self.width,
                "height": self.height, "file_size": len(self.data)}

    def document_json(self) -> dict[str, object]:
        body: dict[str, object] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id,
                                   "file_size": len(self.data)}
        if self.file_name:
            body["file_name"] = self.file_name
        if self.mime_type:
            body["mime_type"] = self.mime_type
        return body

    def file_json(self) -> dict[str, object]:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id, "file_size": len(self.data),
                "file_path": self.file_path}


def _new_ids(prefix: str) -> tuple[str, str]:
    return prefix + secrets.token_urlsafe(40), "AQAD" + secrets.token_urlsafe(9)


def make_photo(data: bytes, file_name: str | None) -> list[StoredFile]:
    """Photo sizes smallest first, as Telegram lists them; the last one holds the original upload."""
    if not data:
        raise EMPTY_FILE
    if len(data) > MAX_PHOTO_BYTES:
        raise FILE_TOO_BIG
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            mime_type = Image.MIME.get(image.format or "", "image/jpeg")
            thumbnail = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise IMAGE_PROCESS_FAILED from exc
    if width + height > 10000 or max(width, height) > 20 * min(width, height):
        raise PHOTO_INVALID_DIMENSIONS
    scale = min(1.0, MAX_PHOTO_SIDE / max(width, height))
    file_id, unique = _new_ids("AgACAgIAAxkDAAI")
    original = StoredFile(file_id, unique, "photo", data, file_name or "photo", mime_type,
                          round(width * scale), round(height * scale))
    if max(width, height) <= THUMBNAIL_SIDE:
        return [original]
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=80)
    thumb_id, thumb_unique = _new_ids("AgACAgIAAxkDAAI")
    small = StoredFile(thumb_id, thumb_unique, "photo", buffer.getvalue(), "thumbnail.jpg", "image/jpeg",
                       thumbnail.width, thumbnail.height)
    return [small, original]


def make_document(data: bytes, file_name: str | None, mime_type: str | None) -> StoredFile:
    if not data:
        raise EMPTY_FILE
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FILE_TOO_BIG
    file_id, unique = _new_ids("BQACAgIAAxkDAAI")
    return StoredFile(file_id, unique, "document", data, file_name or "document", mime_type or "application/octet-stream")
