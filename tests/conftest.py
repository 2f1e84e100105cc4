"""Shared fixtures. Every test runs in its own empty directory with none of the seed's variables set,
so a developer's .env, user_data or exported keys can never leak into a result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trader.config.loader import ENV_OVERRIDES
from trader.security.secret_store import MASTER_KEY_ENV

ISOLATED_ENV = [*ENV_OVERRIDES, MASTER_KEY_ENV, "BSMART_CONFIG"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any], name: str = "config.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write
