"""Nothing a user types reaches the database unredacted (issue 11, finding 6).

The real bot polls the Telegram emulator with the exchange key and secret and the bot token configured. A viewer, a
stranger, a trader and an admin send those secrets and credential look-alikes (another account's key, another bot's
token) in refused commands, bad arguments, unknown commands and plain text. Afterwards no text column of any table
holds any of them, in any letter case, nor a long piece of one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

import tests.bot.conftest as bot_conftest
from tests.bot.conftest import ADMIN, STRANGER, TRADER, VIEWER, running_bot
from trader.config.loader import load_settings

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
OTHER_KEY = "Qw3rTy9UiOp1AsDfGhJkL2zXcVbNm4QwErTyUiOpAsDf5GhJkLzXcVb6NmQwErTy"  # not configured, looks like one
OTHER_TOKEN = "5555555555:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"  # not configured, looks like a bot token


@pytest.fixture
def with_exchange_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """running_bot's settings plus a configured Binance key and secret (dry run: the exchange is the simulator)."""

    def make_settings(write_config: Callable[..., Path], tmp_path: Path, tg: Any, **telegram: Any) -> Any:
        config = {
            "pair_whitelist": ["BTC", "ETH"], "leverage": 10, "max_leverage": 50,
            "user_data_dir": str(tmp_path / "ud"),
            "telegram": {"enabled": True, "api_base_url": f"http://127.0.0.1:{tg.port}",
                         "users": {str(ADMIN): "admin", str(TRADER): "trader", str(VIEWER): "viewer"}, **telegram},
        }
        environ = {"TELEGRAM_TOKEN": tg.token, "BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET}
        return load_settings(write_config(config), environ=environ, dotenv_path=None)

    monkeypatch.setattr(bot_conftest, "make_settings", make_settings)


def _stored_text(engine: Any) -> list[tuple[str, str, str]]:
    """(table, column, raw stored value as text) for every non-null cell of every table, as the driver returns it
    (JSON columns as their serialized text)."""
    cells = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            result = conn.exec_driver_sql(f'SELECT * FROM "{table}"')
            columns = list(result.keys())
            for row in result:
                cells.extend((table, column, str(value)) for column, value in zip(columns, row, strict=True) if value is not None)
    return cells


def _leaks(cells: list[tuple[str, str, str]], secrets: list[str]) -> list[str]:
    found = []
    for table, column, value in cells:
        lowered = value.lower()
        for secret in secrets:
            # The whole secret in any case, or a 20-character piece of it (a cut through a key leaves a piece).
            pieces = {secret, secret[:20], secret[-20:], secret[20:40]}
            if any(piece.lower() in lowered for piece in pieces):
                found.append(f"{table}.{column} holds (part of) {secret[:6]}…: {value[:120]!r}")
    return found


async def test_no_table_holds_a_secret_or_look_alike_a_user_typed(write_config, tmp_path, with_exchange_credentials) -> None:
    async with running_bot(write_config, tmp_path) as bot:
        token = bot.tg.world.bot.token
        assert set(bot.settings.secrets()) == {API_KEY, API_SECRET, token}
        secrets = [API_KEY, API_SECRET, token, OTHER_KEY, OTHER_TOKEN]

        # A viewer: refused commands (audited with the text typed), an unknown command, plain text.
        for text in (f"/flatten {API_KEY}", f"/leverage {API_SECRET}", f"/pause {token}",
                     f"/forcelong {OTHER_KEY} {OTHER_TOKEN}", f"/whitelist add {API_KEY.lower()}",
                     "/flatten " + "x" * 150 + " " + API_SECRET,  # longer than the 200 characters audited
                     f"/{API_KEY}", f"my key is {API_KEY} and the secret {API_SECRET}"):
            await bot.ask(VIEWER, text)
        # A stranger: audited once per interval, with the command name (lower-cased) and nothing else.
        for count, text in enumerate((f"/start {API_KEY}", f"/{API_SECRET}", f"/{token}", f"/{OTHER_KEY}",
                                      f"/{OTHER_TOKEN}"), start=1):
            bot.tg.send_text(STRANGER, text)
            await bot.tg.wait_for(lambda n=count: sum(a.actor.user_id == STRANGER for a in bot.audit(100)) == n)
            bot.advance(bot.deps.access._audit_interval + 1)
        # Users allowed to act, with secrets as arguments: bad arguments and actions that may be audited.
        for user, text in ((TRADER, f"/whitelist add {API_KEY}"), (TRADER, f"/leverage {API_SECRET}"),
                           (TRADER, f"/forceshort {OTHER_KEY}"), (ADMIN, f"/users grant {token} viewer"),
                           (ADMIN, f"/audit {OTHER_TOKEN}"), (ADMIN, f"/settings timezone {API_KEY}"),
                           (ADMIN, f"/backtest {OTHER_KEY} {API_SECRET}")):
            await bot.ask(user, text)

        records = bot.audit(100)
        viewer_denied = [r for r in records if r.actor.user_id == VIEWER and r.outcome == "denied"]
        stranger_rows = [r for r in records if r.actor.user_id == STRANGER]
        assert len(viewer_denied) >= 5 and len(stranger_rows) == 5  # the paths under test did write rows
        assert all("***" in r.arguments["text"] for r in viewer_denied)
        assert sum("***" in str(r.arguments.get("command")) for r in stranger_rows) == 4

        cells = _stored_text(bot.core.engine)
        assert "audit_events" in {table for table, _, _ in cells}
        assert _leaks(cells, secrets) == []
