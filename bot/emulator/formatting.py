"""Message text formatting as the Bot API server does it: parse_mode markup (HTML, MarkdownV2, legacy Markdown)
becomes plain text plus entities, markup Telegram would reject is rejected with its error text, whitespace is
trimmed and the length limit applies to what remains.

Entity offsets and lengths are UTF-16 code units (what the Bot API and PTB use); error positions are UTF-8 byte
offsets into the source (what Telegram reports)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.emulator.errors import ApiError, bad_request, cant_parse_entities

Entity = dict[str, Any]

ENTITY_TYPES = frozenset({
    "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold", "italic", "underline",
    "strikethrough", "spoiler", "blockquote", "expandable_blockquote", "code", "pre", "text_link", "text_mention",
    "custom_emoji",
})


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class FormattedText:
    text: str
    entities: tuple[Entity, ...] = ()

    def entities_json(self) -> list[Entity]:
        return [dict(e) for e in self.entities]


@dataclass
class _Builder:
    parts: list[str] = field(default_factory=list)
    units: int = 0
    entities: list[Entity] = field(default_factory=list)

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.units += utf16_len(chunk)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        # Telegram drops entities that cover nothing rather than failing.
        if self.units > start:
            self.entities.append({"type": kind, "offset": start, "length": self.units - start, **extra})

    def text(self) -> str:
        return "".join(self.parts)


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


# --- HTML -------------------------------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY = re.compile(r"&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]+);")
_TAG_NAME = re.compile(r"[a-zA-Z0-9-]*")
_ATTRIBUTE = re.compile(r"\s*([a-zA-Z0-9_-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


@dataclass
class _OpenTag:
    name: str
    start: int
    attributes: dict[str, str]


def _decode_entity(match: re.Match[str]) -> str | None:
    body = match.group(1)
    if body.startswith("#x"):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return _NAMED_ENTITIES.get(body.lower())
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else None


def parse_html(src: str) -> FormattedText:
    out = _Builder()
    stack: list[_OpenTag] = []
    i, n = 0, len(src)
    while i < n:
        char = src[i]
        if char == "&":
            match = _HTML_ENTITY.match(src, i)
            decoded = _decode_entity(match) if match else None
            if match and decoded is not None:
                out.add(decoded)
                i = match.end()
            else:
                # Unknown entities stay literal, as Telegram leaves them.
                out.add("&")
                i += 1
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        offset = _byte_offset(src, i)
        if i + 1 < n and src[i + 1] == "/":
            name_match = _TAG_NAME.match(src, i + 2)
            name = name_match.group(0).lower()
            close = name_match.end()
            while close < n and src[close].isspace():
                close += 1
            if close >= n or src[close] != ">":
                raise cant_parse_entities(f"Unclosed end tag at byte offset {offset}")
            if not stack:
                raise cant_parse_entities(f"Unexpected end tag at byte offset {offset}")
            if name != stack[-1].name:
                raise cant_parse_entities(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1].name}>", found "</{name}>"'
                )
            _close_html_tag(out, stack.pop())
            i = close + 1
            continue
        name_match = _TAG_NAME.match(src, i + 1)
        name = name_match.group(0).lower()
        if name not in _HTML_TAGS:
            if name_match.end() >= n:
                raise cant_parse_entities(f"Unclosed start tag at byte offset {offset}")
            raise cant_parse_entities(f'Unsupported start tag "{name}" at byte offset {offset}')
        attributes: dict[str, str] = {}
        j = name_match.end()
        while True:
            while j < n and src[j].isspace():
                j += 1
            if j >= n:
                raise cant_parse_entities(f"Unclosed start tag at byte offset {offset}")
            if src[j] == ">":
                break
            attribute = _ATTRIBUTE.match(src, j)
            if not attribute or attribute.end() == j:
                raise cant_parse_entities(f'Empty attribute name in the tag "{name}" at byte offset {offset}')
            value = attribute.group(2) or ""
            if value[:1] in ("'", '"'):
                value = value[1:-1]
            attributes[attribute.group(1).lower()] = _HTML_ENTITY.sub(lambda m: _decode_entity(m) or m.group(0), value)
            j = attribute.end()
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise cant_parse_entities(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
        stack.append(_OpenTag(name, out.units, attributes))
        i = j + 1
    if stack:
        raise cant_parse_entities(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return FormattedText(out.text(), tuple(_merge_pre_code(out.entities)))


def _close_html_tag(out: _Builder, tag: _OpenTag) -> None:
    kind = _HTML_TAGS[tag.name]
    if kind == "text_link":
        href = tag.attributes.get("href")
        if href:
            out.entity("text_link", tag.start, url=href)
    elif kind == "custom_emoji":
        if "emoji-id" in tag.attributes:
            out.entity("custom_emoji", tag.start, custom_emoji_id=tag.attributes["emoji-id"])
    elif kind == "code" and tag.attributes.get("class", "").startswith("language-"):
        out.entity("code", tag.start, language=tag.attributes["class"][len("language-"):])
    elif kind == "blockquote" and "expandable" in tag.attributes:
        out.entity("expandable_blockquote", tag.start)
    else:
        out.entity(kind, tag.start)


def _merge_pre_code(entities: list[Entity]) -> list[Entity]:
    """`<pre><code class="language-x">` is one pre entity with a language, as Telegram reports it."""
    pres = {(e["offset"], e["length"]): e for e in entities if e["type"] == "pre"}
    merged = []
    for entity in entities:
        twin = pres.get((entity["offset"], entity["length"]))
        if entity["type"] == "code" and twin is not None:
            if "language" in entity:
                twin["language"] = entity["language"]
            continue
        if entity["type"] == "code":
            entity.pop("language", None)
        merged.append(entity)
    return merged


# --- MarkdownV2 -------------------------------------------------------------------------------------------------

_RESERVED_V2 = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
}


@dataclass
class _OpenV2:
    kind: str
    start: int
    byte_offset: int
    language: str | None = None


def _closes(kind: str, src: str, i: int) -> bool:
    char, following = src[i], src[i + 1: i + 2]
    return {
        "bold": char == "*",
        "italic": char == "_" and following != "_",
        "underline": src.startswith("__", i),
        "strikethrough": char == "~",
        "spoiler": src.startswith("||", i),
        "code": char == "`",
        "pre": src.startswith("```", i),
        "text_link": char == "]",
    }[kind]


def parse_markdown_v2(src: str) -> FormattedText:
    out = _Builder()
    stack: list[_OpenV2] = []
    i, n = 0, len(src)
    while i < n:
        char = src[i]
        verbatim = bool(stack) and stack[-1].kind in ("code", "pre")
        if char == "\\" and i + 1 < n and 0 < ord(src[i + 1]) <= 126:
            out.add(src[i + 1])
            i += 2
            continue
        if stack and _closes(stack[-1].kind, src, i):
            opened = stack.pop()
            i = _close_v2(out, opened, src, i)
            continue
        if verbatim:
            out.add(char)
            i += 1
            continue
        if char == ">" and (i == 0 or src[i - 1] == "\n") and not stack:
            i = _blockquote_line(out, src, i)
            continue
        opener = _open_v2(src, i, out.units)
        if opener is not None:
            opened, i = opener
            stack.append(opened)
            continue
        if char in _RESERVED_V2:
            raise cant_parse_entities(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        out.add(char)
        i += 1
    if stack:
        opened = stack[-1]
        raise cant_parse_entities(f"Can't find end of {_V2_NAMES[opened.kind]} entity at byte offset {opened.byte_offset}")
    return FormattedText(out.text(), tuple(_merge_blockquotes(out.entities)))


def _open_v2(src: str, i: int, units: int) -> tuple[_OpenV2, int] | None:
    offset = _byte_offset(src, i)
    if src.startswith("```", i):
        j = i + 3
        newline = src.find("\n", j)
        language = src[j:newline] if newline != -1 else ""
        if language and not any(c.isspace() or c == "`" for c in language):
            return _OpenV2("pre", units, offset, language), newline + 1
        return _OpenV2("pre", units, offset), j
    for marker, kind in (("__", "underline"), ("||", "spoiler"), ("*", "bold"), ("_", "italic"),
                         ("~", "strikethrough"), ("`", "code"), ("[", "text_link")):
        if src.startswith(marker, i):
            return _OpenV2(kind, units, offset), i + len(marker)
    return None


def _close_v2(out: _Builder, opened: _OpenV2, src: str, i: int) -> int:
    width = {"underline": 2, "spoiler": 2, "pre": 3}.get(opened.kind, 1)
    i += width
    if opened.kind == "text_link":
        if not src.startswith("(", i):
            # "[text]" without a URL is plain text in Telegram.
            return i
        url_chars: list[str] = []
        j = i + 1
        while j < len(src) and src[j] != ")":
            if src[j] == "\\" and j + 1 < len(src):
                j += 1
            url_chars.append(src[j])
            j += 1
        if j >= len(src):
            raise cant_parse_entities(f"Can't find end of a URL at byte offset {_byte_offset(src, i + 1)}")
        out.entity("text_link", opened.start, url="".join(url_chars))
        return j + 1
    if opened.kind == "pre" and opened.language:
        out.entity("pre", opened.start, language=opened.language)
    else:
        out.entity(opened.kind, opened.start)
    return i


def _blockquote_line(out: _Builder, src: str, i: int) -> int:
    start = out.units
    end = src.find("\n", i)
    line = src[i + 1: end if end != -1 else len(src)]
    inner = parse_markdown_v2(line)
    for entity in inner.entities:
        out.entities.append({**entity, "offset": entity["offset"] + start})
    out.add(inner.text)
    out.entity("blockquote", start)
    if end == -1:
        return len(src)
    out.add("\n")
    return end + 1


def _merge_blockquotes(entities: list[Entity]) -> list[Entity]:
    """Consecutive '>' lines form one quote; each line was parsed as its own, so join touching ones."""
    merged: list[Entity] = []
    for entity in entities:
        last = next((e for e in reversed(merged) if e["type"] == "blockquote"), None)
        if entity["type"] == "blockquote" and last is not None and last["offset"] + last["length"] + 1 == entity["offset"]:
            last["length"] = entity["offset"] + entity["length"] - last["offset"]
        else:
            merged.append(entity)
    return merged


# --- legacy Markdown --------------------------------------------------------------------------------------------

def parse_markdown(src: str) -> FormattedText:
    out = _Builder()
    i, n = 0, len(src)
    while i < n:
        char = src[i]
        if char == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.add(char)
            i += 1
            continue
        offset = _byte_offset(src, i)
        start = out.units
        if src.startswith("```", i):
            end = src.find("```", i + 3)
            if end == -1:
                raise cant_parse_entities(f"Can't find end of the entity starting at byte offset {offset}")
            body = src[i + 3:end]
            language, newline, rest = body.partition("\n")
            if newline and language and not any(c.isspace() for c in language):
                out.add(rest)
                out.entity("pre", start, language=language)
            else:
                out.add(body)
                out.entity("pre", start)
            i = end + 3
            continue
        closer = "]" if char == "[" else char
        end = src.find(closer, i + 1)
        if end == -1:
            raise cant_parse_entities(f"Can't find end of the entity starting at byte offset {offset}")
        out.add(src[i + 1:end])
        if char == "[":
            url_end = src.find(")", end + 2) if src.startswith("(", end + 1) else -1
            if url_end == -1:
                i = end + 1
                continue
            out.entity("text_link", start, url=src[end + 2:url_end])
            i = url_end + 1
            continue
        out.entity({"*": "bold", "_": "italic", "`": "code"}[char], start)
        i = end + 1
    return FormattedText(out.text(), tuple(out.entities))


# --- explicit entities, automatic entities, trimming ------------------------------------------------------------

def validate_entities(text: str, entities: Iterable[Any]) -> tuple[Entity, ...]:
    """Entities passed explicitly instead of a parse_mode; Telegram checks type and bounds."""
    total = utf16_len(text)
    checked = []
    for raw in entities:
        if not isinstance(raw, dict) or raw.get("type") not in ENTITY_TYPES:
            raise bad_request("can't parse MessageEntity: Unsupported type specified")
        offset, length = raw.get("offset"), raw.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length <= 0:
            raise bad_request("can't parse MessageEntity: Field \"offset\" or \"length\" must be a positive Number")
        if offset + length > total:
            raise bad_request("entity end is beyond the end of the text")
        if raw["type"] == "text_link" and not raw.get("url"):
            raise bad_request("can't parse MessageEntity: Field \"url\" must be of type String")
        checked.append(dict(raw))
    return tuple(checked)


# Telegram marks these in every message, the bot's included; a command is "/" + up to 32 letters, digits or
# underscores, optionally addressed "@botname", at a word start.
_AUTOMATIC = (
    ("bot_command", re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("url", re.compile(r"(?<![\w@])(?:https?://)[^\s<>\"]+[^\s<>\".,;:!?)\]]")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{1,8}\b")),
)


def detect_entities(text: str, explicit: Iterable[Entity] = ()) -> tuple[Entity, ...]:
    taken = [(e["offset"], e["offset"] + e["length"]) for e in explicit]
    found: list[Entity] = []
    for kind, pattern in _AUTOMATIC:
        for match in pattern.finditer(text):
            start = utf16_len(text[:match.start()])
            end = start + utf16_len(match.group(0))
            if any(start < hi and lo < end for lo, hi in taken):
                continue
            taken.append((start, end))
            found.append({"type": kind, "offset": start, "length": end - start})
    return tuple(found)


def _utf16_to_index(text: str, units: int) -> int:
    count = 0
    for index, char in enumerate(text):
        if count >= units:
            return index
        count += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def trim(formatted: FormattedText) -> FormattedText:
    """Telegram strips surrounding whitespace from a message and clips entities to what is left."""
    text = formatted.text
    stripped = text.strip()
    if stripped == text:
        return formatted
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return FormattedText(stripped, tuple(entities))


PARSERS = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}


def format_text(text: str, parse_mode: str | None, entities: Iterable[Any] | None, *, limit: int,
                empty_error: ApiError, too_long_error: ApiError) -> FormattedText:
    """The full server-side path for a text or caption: parse, trim, check length, add automatic entities."""
    if parse_mode:
        parser = PARSERS.get(parse_mode.lower())
        if parser is None:
            raise bad_request(f"unsupported parse_mode {parse_mode}")
        formatted = parser(text)
    else:
        formatted = FormattedText(text, validate_entities(text, entities or ()))
    formatted = trim(formatted)
    if not formatted.text:
        raise empty_error
    if len(formatted.text) > limit:
        raise too_long_error
    explicit = formatted.entities
    combined = sorted([*explicit, *detect_entities(formatted.text, explicit)], key=lambda e: (e["offset"], -e["length"]))
    return FormattedText(formatted.text, tuple(combined))
