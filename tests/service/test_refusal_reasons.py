"""Every refusal can be said in the user's language: each ServiceError raise site names a registered reason with
exactly its parameters, and every reason has a text with those fields in both catalogs."""

from __future__ import annotations

import ast
import json
import string
from pathlib import Path

import pytest

from trader.service.errors import REASONS, ServiceError

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("trader", "bot", "reports")
COMPOSITE = {"several"}  # said as its items' reasons, joined (bot/telegram/context.py reason_text)


def _sites() -> list[tuple[str, ast.Call]]:
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ServiceError":
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return found


def test_the_scan_finds_the_raise_sites() -> None:
    assert len(_sites()) > 60  # a broken scan must not pass by finding nothing


def test_every_raise_site_names_a_registered_reason_with_its_parameters() -> None:
    problems = []
    for where, call in _sites():
        keywords = {k.arg: k.value for k in call.keywords}
        reason = keywords.get("reason")
        if reason is None:
            problems.append(f"{where}: no reason")
            continue
        if not isinstance(reason, ast.Constant):
            continue  # computed (leverage problems): the constructor checks it, the tests below check the registry
        if reason.value not in REASONS:
            problems.append(f"{where}: unknown reason {reason.value!r}")
            continue
        params = keywords.get("params")
        given = set() if params is None else {k.value for k in params.keys} if isinstance(params, ast.Dict) else None
        if given is not None and given != set(REASONS[reason.value]):
            problems.append(f"{where}: {reason.value} takes {REASONS[reason.value]}, given {sorted(given)}")
    assert problems == []


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_every_reason_has_a_text_with_its_fields(language: str) -> None:
    catalog = json.loads((ROOT / "locales" / f"{language}.json").read_text(encoding="utf-8"))
    problems = []
    for reason, fields in REASONS.items():
        if reason in COMPOSITE:
            continue
        text = catalog.get(f"reason.{reason}")
        if text is None:
            problems.append(f"reason.{reason} missing")
            continue
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        if used != set(fields):
            problems.append(f"reason.{reason} uses {sorted(used)}, the reason has {sorted(fields)}")
    assert problems == []


def test_the_constructor_refuses_unknown_reasons_and_wrong_parameters() -> None:
    with pytest.raises(ValueError, match="unknown refusal reason"):
        ServiceError("refused", "x", reason="no_such_reason")
    with pytest.raises(ValueError, match="takes"):
        ServiceError("refused", "x", reason="pair_not_traded", params={"pair": "BTC/USDT:USDT"})
    exc = ServiceError("invalid_argument", "not traded on the exchange: FOO/USDT:USDT", reason="pair_not_traded",
                       params={"pairs": ["FOO/USDT:USDT"]})
    assert (exc.reason, exc.params, exc.message) == ("pair_not_traded", {"pairs": ["FOO/USDT:USDT"]},
                                                      "not traded on the exchange: FOO/USDT:USDT")
