"""Load settings: embedded defaults < config file < ``.env`` < environment < encrypted secret store (blanks only).

Every problem found is reported at once, one line each, naming the key path and the offending value, so a user
fixes a config in one round. Secret values are never echoed back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from trader.config.schema import Settings

CONFIG_ENV = "BSMART_CONFIG"
SECRET_KEY_NAMES = ("key", "secret", "token", "password")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_stake(text: str) -> str | Decimal:
    value = text.strip()
    if value.lower() == "unlimited":
        return "unlimited"
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError("expected a number or 'unlimited'") from None


# The seed's environment names and where they land in the config tree.
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "BINANCE_API_KEY": (("exchange", "key"), str),
    "BINANCE_API_SECRET": (("exchange", "secret"), str),
    "TELEGRAM_TOKEN": (("telegram", "token"), str),
    "TELEGRAM_CHAT_ID": (("telegram", "chat_id"), _parse_int),
    "DRY_RUN": (("dry_run",), _parse_bool),
    "STAKE_AMOUNT": (("stake_amount",), _parse_stake),
    "MAX_OPEN_TRADES": (("max_open_trades",), _parse_int),
    "LOG_LEVEL": (("log_level",), lambda s: s.strip().upper()),
}

# Names in the encrypted store that fill a config value left blank.
SECRET_SLOTS: dict[str, tuple[str, ...]] = {
    "binance_api_key": ("exchange", "key"),
    "binance_api_secret": ("exchange", "secret"),
    "telegram_token": ("telegram", "token"),
    "smtp_password": ("email", "password"),
}


def is_secret_path(path: str) -> bool:
    leaf = path.rsplit(".", 1)[-1].lower()
    return any(word in leaf for word in SECRET_KEY_NAMES)


def _show(path: str, value: Any) -> str:
    if is_secret_path(path):
        return "'***'"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path} cannot be read: {exc.strerror}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a JSON object, got {type(data).__name__}"])
    return data


def _apply_env(
    tree: dict[str, Any], values: Mapping[str, str | None], origin: dict[str, str], problems: list[str]
) -> None:
    for name, (path, parse) in ENV_OVERRIDES.items():
        raw = values.get(name)
        if raw is None or raw.strip() == "":
            continue  # an empty variable means "not set", as docker-compose writes them
        try:
            _set(tree, path, parse(raw))
        except ValueError as exc:
            problems.append(f"{name}: {exc} (got {_show('.'.join(path), raw)})")
            continue
        origin[".".join(path)] = name


_PREFIXED = re.compile(r"^(?P<path>[a-z_][a-z0-9_.]*): (?P<rest>.*)$")


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format_error(err: Mapping[str, Any], origin: Mapping[str, str]) -> list[str]:
    parts = tuple(err["loc"])
    msg: str = err["msg"].removeprefix("Value error, ")
    if parts and parts[-1] == "[key]":  # a bad dictionary key: blame the mapping, quote the key
        parts = parts[:-2]
        msg = f"key {err['input']!r}: {msg}"
        err = {**err, "input": {}}
    loc = _loc(parts)
    out = []
    for line in msg.split("\n"):
        # Cross-field checks name the key they blame as "path: message", relative to where they run.
        m = _PREFIXED.match(line) if err["type"] == "value_error" else None
        if m:
            where, text, shown = (f"{loc}.{m['path']}" if loc else m["path"]), m["rest"], ""
        else:
            where = loc or "(config)"
            text = "unknown key" if err["type"] == "extra_forbidden" else line
            shown = ""
            if not isinstance(err.get("input"), dict | list):
                shown = f" (got {_show(where, err.get('input'))})"
                if shown[6:-1] in text:  # the message already quotes the value
                    shown = ""
        source = f" [from {origin[where]}]" if where in origin else ""
        out.append(f"{where}: {text}{shown}{source}")
    return out


def validate(tree: Mapping[str, Any], origin: Mapping[str, str] | None = None) -> Settings:
    """Validate a merged config tree; raise ``ConfigError`` listing every problem."""
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors(include_url=False):
            problems.extend(_format_error(err, origin or {}))
        raise ConfigError(problems) from None


def resolve_config_path(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if path:
        return Path(path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return None


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = ".env",
    secret_lookup: Callable[[Path, str], str | None] | None = None,
) -> Settings:
    """Build the settings for one process.

    ``path`` None means ``$BSMART_CONFIG`` or, failing that, the embedded defaults alone.
    ``secret_lookup(user_data_dir, name)`` fills exchange key/secret and bot token when no other source set them.
    """
    env = os.environ if environ is None else environ
    config_path = resolve_config_path(path, env)
    tree: dict[str, Any] = read_config_file(config_path) if config_path else {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    if dotenv_path and Path(dotenv_path).is_file():
        _apply_env(tree, dotenv_values(dotenv_path), origin, problems)
    _apply_env(tree, env, origin, problems)
    if secret_lookup is not None:
        user_data = Path(tree.get("user_data_dir") or "user_data")
        for name, slot in SECRET_SLOTS.items():
            if not _get(tree, slot):
                try:
                    value = secret_lookup(user_data, name)
                except Exception as exc:  # the store says why it cannot be read; report it with the others
                    problems.append(f"secret store: {exc}")
                    break
                if value:
                    _set(tree, slot, value)
                    origin[".".join(slot)] = f"secret store ({name})"
    try:
        settings = validate(tree, origin)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return settings


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data with every secret replaced by ``***``."""
    data = settings.model_dump(mode="json")

    def walk(node: Any, prefix: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, prefix) for v in node]
        if node is not None and is_secret_path(prefix):
            return "***"
        return node

    return walk(data, "")
