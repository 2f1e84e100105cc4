"""The catalogs are complete: every key the code uses exists in English and Chinese, with the same fields,
and the Chinese catalog is a translation, not a copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.i18n import LANGUAGES, LOCALES_DIR, Catalogs, language_from_client
from bot.telegram.handlers import all_commands
from bot.telegram.notifier import ENGINE_STATES, PURPOSES
from bot.telegram.permissions import ROLES
from bot.telegram.store import DEFAULT_LEVELS, LEVELS
from trader.events import EVENT_KINDS
from trader.service.errors import CODES

SOURCES = Path(__file__).resolve().parents[2] / "bot" / "telegram"
LITERAL = re.compile(r"""\b(?:t|tr|request\.t)\(\s*"([a-z0-9_.]+)"|"((?:help|confirm|whitelist|report)\.[a-z0-9_.]+)\"""")


def _catalog(language: str) -> dict[str, str]:
    return json.loads((LOCALES_DIR / f"{language}.json").read_text(encoding="utf-8"))


def used_keys() -> set[str]:
    """Literal keys in the bot's sources, plus the families built from values (f"role.{role}", …)."""
    keys: set[str] = set()
    for path in SOURCES.rglob("*.py"):
        for match in LITERAL.finditer(path.read_text(encoding="utf-8")):
            keys.add(match.group(1) or match.group(2))
    commands = all_commands()
    keys |= {c.help_key for c in commands} | {f"usage.{c.name}" for c in commands}
    keys |= {f"role.{r}" for r in ROLES} | {"side.long", "side.short"} | {f"level.{lv}" for lv in LEVELS}
    keys |= {f"language.{lang}" for lang in LANGUAGES} | {f"error.{code}" for code in CODES}
    keys |= {f"event.{k}" for k in EVENT_KINDS} | {f"event.msg.{k}" for k in EVENT_KINDS}
    keys |= {f"event.{k}" for k in DEFAULT_LEVELS} | {f"purpose.{p}" for p in PURPOSES}
    keys |= {f"engine_state.{s}" for s in ENGINE_STATES} | {f"pnl.period.{p}" for p in ("day", "week", "month")}
    keys |= {"trades.status.open", "trades.status.closed", "whitelist.confirm_add", "whitelist.confirm_remove"}
    return keys


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_used_key_is_in_the_catalog(language: str) -> None:
    missing = sorted(used_keys() - set(_catalog(language)))
    assert missing == [], f"{language}.json lacks {missing}"


def test_both_catalogs_have_the_same_keys_and_fields() -> None:
    en, zh = _catalog("en"), _catalog("zh_CN")
    assert sorted(set(en) ^ set(zh)) == []
    catalogs = Catalogs()
    mismatched = [k for k in en if catalogs.fields("en", k) != catalogs.fields("zh_CN", k)]
    assert mismatched == []


def test_chinese_is_a_translation() -> None:
    en, zh = _catalog("en"), _catalog("zh_CN")
    # Command syntax lines and pure symbols are the same in every language.
    copies = [k for k in en if en[k] == zh[k] and re.search(r"[A-Za-z]{3}", re.sub(r"/\w+|\{\w+\}", "", en[k]))]
    assert copies == []
    han = sum(1 for k in zh if re.search(r"[\u4e00-\u9fff]", zh[k]))
    assert han / len(zh) > 0.85


def test_fallback_to_english_and_unknown_keys_fail(tmp_path: Path) -> None:
    (tmp_path / "en.json").write_text(json.dumps({"a": "A {x}", "b": "B"}), encoding="utf-8")
    (tmp_path / "zh_CN.json").write_text(json.dumps({"a": "甲 {y}"}), encoding="utf-8")
    catalogs = Catalogs(tmp_path)
    zh = catalogs.translator("zh_CN")
    assert zh("b") == "B"  # missing in Chinese: English
    assert zh("a", x=1) == "A 1"  # broken Chinese field: English rather than no answer
    assert catalogs.translator("fr")("b") == "B"
    with pytest.raises(KeyError):
        zh("nowhere")


def test_client_language_codes() -> None:
    assert language_from_client("zh-hans") == "zh_CN"
    assert language_from_client("en-GB") == "en" and language_from_client(None) == "en"


def test_the_key_scan_sees_the_code() -> None:
    keys = used_keys()
    # Keys reached only through a variable or a literal in a tuple must still be found, or the test above is blind.
    assert {"gate.stranger", "confirm.not_yours", "confirm.used", "whitelist.removed", "report.day",
            "help.flatten", "usage.forceexit", "event.msg.order_filled"} <= keys
    assert len(keys) > 200


def test_backtest_chart_words_come_from_the_catalogs() -> None:
    from bot.i18n import Catalogs
    from bot.telegram.handlers.backtest import CHART_LABEL_KEYS, chart_labels

    zh = chart_labels(Catalogs().translator("zh_CN"))
    en = chart_labels(Catalogs().translator("en"))
    assert set(zh) == set(CHART_LABEL_KEYS) and all(set(zh[c]) == set(CHART_LABEL_KEYS[c]) for c in zh)
    assert zh["report"]["max_drawdown"] == "最大回撤" and en["report"]["max_drawdown"] == "Max drawdown"
