from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from trader.security.secret_store import MASTER_KEY_ENV, SecretStore, SecretStoreError, lookup

VALUE = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def test_round_trip_encrypted_at_rest(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, environ={})
    store.set("binance_api_secret", VALUE)
    assert VALUE not in store.path.read_text()
    assert store.get("binance_api_secret") == VALUE
    assert store.names() == ["binance_api_secret"]
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    # A second process finds the same key file and reads the same value.
    assert SecretStore(tmp_path, environ={}).get("binance_api_secret") == VALUE


def test_master_key_from_environment(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    store = SecretStore(tmp_path, environ={MASTER_KEY_ENV: key})
    store.set("telegram_token", "123456:ABC-DEF")
    assert not store.key_path.exists()
    assert SecretStore(tmp_path, environ={MASTER_KEY_ENV: key}).get("telegram_token") == "123456:ABC-DEF"
    other = SecretStore(tmp_path, environ={MASTER_KEY_ENV: Fernet.generate_key().decode()})
    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        other.get("telegram_token")
    with pytest.raises(SecretStoreError, match="no master key"):
        SecretStore(tmp_path, environ={}).get("telegram_token")
    with pytest.raises(SecretStoreError, match="not a valid Fernet key"):
        SecretStore(tmp_path, environ={MASTER_KEY_ENV: "short"}).get("telegram_token")


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, environ={})
    store.set("binance_api_key", VALUE)
    os.chmod(store.key_path, 0o644)
    with pytest.raises(SecretStoreError, match="readable by others"):
        store.get("binance_api_key")


def test_names_and_values_are_checked(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, environ={})
    with pytest.raises(SecretStoreError, match="invalid secret name"):
        store.set("../escape", VALUE)
    with pytest.raises(SecretStoreError, match="empty"):
        store.set("binance_api_key", "")
    assert not store.path.exists()
    assert store.delete("binance_api_key") is False
    store.set("binance_api_key", VALUE)
    assert store.delete("binance_api_key") is True
    assert store.get("binance_api_key") is None


def test_corrupt_store_is_reported(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text("{not json")
    with pytest.raises(SecretStoreError, match="cannot be read"):
        SecretStore(tmp_path, environ={}).names()


def test_lookup_without_store(tmp_path: Path) -> None:
    assert lookup(tmp_path, "binance_api_key") is None
