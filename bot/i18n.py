"""Message catalogs: every text a user sees comes from ``locales/<language>.json``.

A catalog is a flat JSON object, key → text with ``str.format`` fields. Users pick a language with /settings;
a key missing from their catalog falls back to English, and a key missing from English is a programming error
(the completeness test catches it before it ships).
"""

from __future__ import annotations

import json
import logging
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "zh_CN")

def _locales_dir() -> Path:
    """The repository's locales/ (source and editable installs), else ./locales (an installed package run
    from the project directory, as in the Docker image), overridable with BSMART_LOCALES."""
    candidates = [Path(os.environ["BSMART_LOCALES"])] if os.environ.get("BSMART_LOCALES") else []
    candidates += [Path(__file__).resolve().parents[1] / "locales", Path.cwd() / "locales"]
    for candidate in candidates:
        if (candidate / f"{DEFAULT_LANGUAGE}.json").is_file():
            return candidate
    return candidates[0]


LOCALES_DIR = _locales_dir()
# Telegram clients report IETF tags ("zh-hans", "en-GB"); the menu API takes two-letter ISO 639-1 codes.
MENU_CODES = {"en": "en", "zh_CN": "zh"}


def language_from_client(code: str | None) -> str:
    """The catalog closest to a Telegram client's language_code, English when none fits."""
    if code and code.lower().startswith("zh"):
        return "zh_CN"
    return DEFAULT_LANGUAGE


class Catalogs:
    def __init__(self, directory: Path = LOCALES_DIR, languages: tuple[str, ...] = LANGUAGES):
        self.languages = languages
        self.texts: dict[str, dict[str, str]] = {}
        for language in languages:
            with open(directory / f"{language}.json", encoding="utf-8") as handle:
                self.texts[language] = json.load(handle)

    def has(self, key: str) -> bool:
        return key in self.texts[DEFAULT_LANGUAGE]

    def text(self, language: str, key: str, /, **fields: Any) -> str:
        catalog = self.texts.get(language) or self.texts[DEFAULT_LANGUAGE]
        template = catalog.get(key)
        if template is None:
            template = self.texts[DEFAULT_LANGUAGE][key]  # KeyError here is a bug: the key exists nowhere
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            # A translation with a broken field must not cost the user the answer: use English.
            log.error("catalog %s: key %s does not format with %s", language, key, sorted(fields))
            return self.texts[DEFAULT_LANGUAGE][key].format(**fields)

    def fields(self, language: str, key: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.texts[language][key]) if name}

    def translator(self, language: str) -> Translator:
        return Translator(self, language if language in self.texts else DEFAULT_LANGUAGE)


@dataclass(frozen=True)
class Translator:
    """Catalogs bound to one user's language: ``t("status.title", pairs=...)``."""

    catalogs: Catalogs
    language: str

    def __call__(self, key: str, /, **fields: Any) -> str:
        return self.catalogs.text(self.language, key, **fields)


_default: Catalogs | None = None


def catalogs() -> Catalogs:
    """The shipped catalogs, loaded once."""
    global _default
    if _default is None:
        _default = Catalogs()
    return _default
