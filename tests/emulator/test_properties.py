"""Properties of the parsers over arbitrary text: escaped text comes back unchanged, entities stay inside the
text, and malformed markup is refused with a 400 rather than crashing the server."""

from __future__ import annotations

import html

from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.helpers import escape_markdown

from bot.emulator.errors import ApiError
from bot.emulator.formatting import parse_html, parse_markdown_v2, utf16_len
from bot.emulator.transcript import render_message

TEXT = st.text(max_size=200)
MARKUPISH = st.text(alphabet=st.sampled_from(list("ab <>/&;*_~|`[]()\\#.!-=b i u s pre code a href=\"'é📈\n")),
                    max_size=80)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_html_escaped_text_round_trips(text: str) -> None:
    parsed = parse_html(html.escape(text, quote=False))
    assert parsed.text == text and parsed.entities == ()


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_markdown_v2_escaped_text_round_trips(text: str) -> None:
    parsed = parse_markdown_v2(escape_markdown(text, version=2))
    assert parsed.text == text and parsed.entities == ()


@settings(max_examples=400, deadline=None)
@given(MARKUPISH, st.sampled_from([parse_html, parse_markdown_v2]))
def test_any_markup_parses_within_bounds_or_is_a_400(source: str, parser: object) -> None:
    try:
        parsed = parser(source)  # type: ignore[operator]
    except ApiError as exc:
        assert exc.error_code == 400 and exc.description.startswith("Bad Request: can't parse entities: ")
        return
    total = utf16_len(parsed.text)
    for entity in parsed.entities:
        assert entity["length"] > 0 and 0 <= entity["offset"] and entity["offset"] + entity["length"] <= total


def test_transcript_numbers_callback_buttons() -> None:
    from datetime import UTC, datetime

    from bot.emulator.state import Chat, ChatMessage, User

    message = ChatMessage(Chat(1, "private"), 5, User(9, "bsmart", is_bot=True), datetime(2025, 5, 1, tzinfo=UTC),
                          text="Flatten?", reply_markup={"inline_keyboard": [
                              [{"text": "Confirm", "callback_data": "c"}, {"text": "Cancel", "callback_data": "x"}],
                              [{"text": "Docs", "url": "https://x.test"}]]})
    text, buttons = render_message(message, first_number=3)
    assert text.splitlines() == ["[bot 00:00:00]", "Flatten?", "  [3] Confirm   [4] Cancel",
                                 "  [Docs -> https://x.test]"]
    assert [(b.number, b.button.callback_data) for b in buttons] == [(3, "c"), (4, "x")]
