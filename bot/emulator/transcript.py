"""Plain-text rendering of a chat for a terminal: what a phone would show, with inline buttons numbered so a
person can press them by typing the number (the `bsmart demo` chat)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.emulator.keyboards import InlineButton
from bot.emulator.state import ChatMessage


@dataclass(frozen=True)
class NumberedButton:
    number: int
    message: ChatMessage
    button: InlineButton


def _size(data: bytes) -> str:
    return f"{len(data) / 1024:.1f} kB" if len(data) >= 1024 else f"{len(data)} B"


def render_message(message: ChatMessage, first_number: int = 1) -> tuple[str, list[NumberedButton]]:
    """The message as lines of text, and its callback buttons numbered from first_number."""
    who = "bot" if message.from_bot else (message.sender.username or message.sender.first_name)
    stamp = message.date.strftime("%H:%M:%S")
    flags = " (edited)" if message.edit_date else ""
    flags += " (deleted)" if message.deleted else ""
    lines = [f"[{who} {stamp}{flags}]"]
    if message.photo:
        largest = message.photo[-1]
        lines.append(f"<photo {largest.width}x{largest.height}, {_size(largest.data)}>")
    if message.document is not None:
        lines.append(f"<document {message.document.file_name}, {_size(message.document.data)}>")
    body = message.text if message.text is not None else message.caption
    if body:
        lines.extend(body.splitlines() or [""])
    numbered: list[NumberedButton] = []
    for row in _rows(message):
        cells = []
        for button in row:
            if button.callback_data is not None and not message.deleted:
                entry = NumberedButton(first_number + len(numbered), message, button)
                numbered.append(entry)
                cells.append(f"[{entry.number}] {button.text}")
            else:
                cells.append(f"[{button.text} -> {button.url or 'not pressable here'}]")
        lines.append("  " + "   ".join(cells))
    return "\n".join(lines), numbered


def _rows(message: ChatMessage) -> list[list[InlineButton]]:
    rows: dict[int, list[InlineButton]] = {}
    for button in message.buttons():
        rows.setdefault(button.row, []).append(button)
    return [rows[index] for index in sorted(rows)]
