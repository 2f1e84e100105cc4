"""An encrypted store for API keys and the bot token.

One file, ``<user_data>/secrets.json``, maps names to Fernet tokens. The master key comes from
``BSMART_MASTER_KEY`` or from ``<user_data>/master.key``, created with mode 0600 on first use. A key file that
other users can read is refused: the store would be no safer than plain text.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

MASTER_KEY_ENV = "BSMART_MASTER_KEY"
STORE_NAME = "secrets.json"
KEY_FILE_NAME = "master.key"
KNOWN_NAMES = ("binance_api_key", "binance_api_secret", "telegram_token", "smtp_password")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SecretStoreError(Exception):
    """The store or its master key cannot be used; the message says why."""


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise SecretStoreError(f"invalid secret name {name!r} (lower-case letters, digits and _; e.g. {KNOWN_NAMES[0]})")


class SecretStore:
    def __init__(self, user_data_dir: Path, environ: Mapping[str, str] | None = None):
        self.dir = Path(user_data_dir)
        self.path = self.dir / STORE_NAME
        self.key_path = self.dir / KEY_FILE_NAME
        self._environ = os.environ if environ is None else environ

    # -- master key ---------------------------------------------------------------------------------------------
    def _fernet(self, create: bool) -> Fernet | None:
        env_key = self._environ.get(MASTER_KEY_ENV)
        if env_key:
            try:
                return Fernet(env_key.strip().encode())
            except (ValueError, TypeError):
                raise SecretStoreError(f"{MASTER_KEY_ENV} is not a valid Fernet key (32 url-safe base64 bytes)") from None
        if self.key_path.exists():
            mode = stat.S_IMODE(self.key_path.stat().st_mode)
            if mode & 0o077:
                raise SecretStoreError(f"{self.key_path} is readable by others (mode {mode:o}); run chmod 600 on it")
            try:
                return Fernet(self.key_path.read_bytes().strip())
            except (ValueError, TypeError):
                raise SecretStoreError(f"{self.key_path} does not hold a valid Fernet key") from None
        if not create:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        # O_EXCL + mode 0600 at creation: the key is never on disk with wider permissions, even for an instant.
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
        return Fernet(key)

    # -- file -----------------------------------------------------------------------------------------------------
    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SecretStoreError(f"{self.path} cannot be read: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretStoreError(f"{self.path} is not a secret store")
        return data

    def _write(self, data: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)  # atomic: a crash mid-write never leaves a truncated store

    # -- API ------------------------------------------------------------------------------------------------------
    def set(self, name: str, value: str) -> None:
        _check_name(name)
        if not value:
            raise SecretStoreError("refusing to store an empty secret")
        fernet = self._fernet(create=True)
        assert fernet is not None
        data = self._read()
        data[name] = fernet.encrypt(value.encode()).decode()
        self._write(data)

    def get(self, name: str) -> str | None:
        data = self._read()
        if name not in data:
            return None
        fernet = self._fernet(create=False)
        if fernet is None:
            raise SecretStoreError(f"{self.path} exists but no master key was found ({MASTER_KEY_ENV} or {self.key_path})")
        try:
            return fernet.decrypt(data[name].encode()).decode()
        except InvalidToken:
            raise SecretStoreError(f"secret {name!r} cannot be decrypted with this master key") from None

    def delete(self, name: str) -> bool:
        data = self._read()
        if name not in data:
            return False
        del data[name]
        self._write(data)
        return True

    def names(self) -> list[str]:
        return sorted(self._read())


def lookup(user_data_dir: Path, name: str) -> str | None:
    """The loader's hook: read one secret, or None when there is no store or no such entry."""
    store = SecretStore(user_data_dir)
    if not store.path.exists():
        return None
    return store.get(name)
