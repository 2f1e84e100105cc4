"""parse_mode handling: text and entities as Telegram returns them, and its refusals."""

from __future__ import annotations

import pytest

from bot.emulator.errors import ApiError
from bot.emulator.formatting import detect_entities, format_text, parse_html, parse_markdown, parse_markdown_v2

EMPTY = ApiError(400, "empty")
LONG = ApiError(400, "long")


def fmt(text: str, mode: str | None) -> tuple[str, list[dict[str, object]]]:
    result = format_text(text, mode, None, limit=4096, empty_error=EMPTY, too_long_error=LONG)
    return result.text, list(result.entities)


def test_html_nested_tags_links_and_escapes() -> None:
    text, entities = fmt('<b>PnL <i>+1.5%</i></b> &lt;BTC&gt; <a href="https://x.test/?a=1&amp;b=2">chart</a>', "HTML")
    assert text == "PnL +1.5% <BTC> chart"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 9},
        {"type": "italic", "offset": 4, "length": 5},
        {"type": "text_link", "offset": 16, "length": 5, "url": "https://x.test/?a=1&b=2"},
    ]


def test_html_pre_with_language_is_one_entity() -> None:
    parsed = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert parsed.entities == ({"type": "pre", "offset": 0, "length": 5, "language": "python"},)


def test_offsets_count_utf16_units() -> None:
    text, entities = fmt("📈 <b>up</b>", "HTML")
    assert text == "📈 up"
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]


@pytest.mark.parametrize("source, detail", [
    ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ("done</b>", "Unexpected end tag at byte offset 4"),
    ("<blink>x</blink>", 'Unsupported start tag "blink" at byte offset 0'),
    ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
    ("é<b", "Unclosed start tag at byte offset 2"),
    ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
])
def test_html_refusals(source: str, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_html(source)
    assert caught.value.error_code == 400
    assert caught.value.description == f"Bad Request: can't parse entities: {detail}"


def test_markdown_v2_entities_and_escapes() -> None:
    parsed = parse_markdown_v2(r"*bold _both_* __u__ ~s~ ||hide|| `a\`b` [site](https://x.test/a\)b) 1\.5")
    assert parsed.text == "bold both u s hide a`b site 1.5"
    kinds = [(e["type"], parsed.text[e["offset"]:e["offset"] + e["length"]]) for e in parsed.entities]
    assert sorted(kinds) == sorted([("bold", "bold both"), ("italic", "both"), ("underline", "u"),
                                    ("strikethrough", "s"), ("spoiler", "hide"), ("code", "a`b"), ("text_link", "site")])
    assert next(e for e in parsed.entities if e["type"] == "text_link")["url"] == "https://x.test/a)b"


@pytest.mark.parametrize("source, detail", [
    ("PnL +1.5%", "Character '+' is reserved and must be escaped with the preceding '\\'"),
    ("*never closed", "Can't find end of Bold entity at byte offset 0"),
    ("ok `code", "Can't find end of Code entity at byte offset 3"),
])
def test_markdown_v2_refusals(source: str, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_markdown_v2(source)
    assert caught.value.description == f"Bad Request: can't parse entities: {detail}"


def test_legacy_markdown() -> None:
    parsed = parse_markdown("*b* _i_ `c` [l](https://x.test)")
    assert parsed.text == "b i c l"
    assert [e["type"] for e in parsed.entities] == ["bold", "italic", "code", "text_link"]
    with pytest.raises(ApiError, match="Can't find end of the entity starting at byte offset 2"):
        parse_markdown("a *b")


def test_length_limit_applies_after_parsing() -> None:
    assert len(fmt("<b>" + "x" * 4096 + "</b>", "HTML")[0]) == 4096
    with pytest.raises(ApiError) as caught:
        fmt("x" * 4097, None)
    assert caught.value is LONG


def test_commands_mentions_and_links_are_detected() -> None:
    text = "/flatten@bsmart_bot now @ana_trader see https://x.test/r. #btc $BTC"
    found = {(e["type"], text[e["offset"]:e["offset"] + e["length"]]) for e in detect_entities(text)}
    assert found == {("bot_command", "/flatten@bsmart_bot"), ("mention", "@ana_trader"),
                     ("url", "https://x.test/r"), ("hashtag", "#btc"), ("cashtag", "$BTC")}
    assert detect_entities("a/b and path/to") == ()
