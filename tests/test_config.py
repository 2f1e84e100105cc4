from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.config.loader import ConfigError, load_settings, redacted_dump
from trader.config.pairs import exchange_symbol, file_stem, normalize_pair
from trader.config.schema import Settings

REPO = Path(__file__).resolve().parents[1]
KEY = "k" * 64
SECRET = "s" * 64


def problems_for(write_config, data: dict, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(data), environ=environ or {})
    return info.value.problems


def test_embedded_defaults_are_a_safe_dry_run() -> None:
    s = load_settings(None, environ={})
    assert s.dry_run is True
    assert (s.leverage, s.margin_mode, s.stake_currency) == (25, "cross", "USDT")
    assert s.pair_whitelist == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert s.exchange.key is None


@pytest.mark.parametrize("name", ["config.example.json", "config.simulator.json"])
def test_shipped_examples_validate(name: str) -> None:
    s = load_settings(REPO / "config" / name, environ={})
    assert s.dry_run is True


def test_example_lists_every_top_level_key() -> None:
    example = json.loads((REPO / "config" / "config.example.json").read_text())
    assert set(example) == set(Settings.model_fields)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"levrage": 10}, "levrage: unknown key"),
        ({"risk": {"risk_per_trad": 0.01}}, "risk.risk_per_trad: unknown key"),
        ({"leverage": "25"}, "leverage: Input should be a valid integer"),
        ({"leverage": 0}, "leverage: Input should be greater than or equal to 1 (got 0)"),
        ({"leverage": 126, "max_leverage": 125}, "leverage: Input should be less than or equal to 125 (got 126)"),
        ({"leverage": 30, "max_leverage": 20}, "leverage: 30 is above max_leverage 20"),
        ({"dry_run": "false"}, "dry_run: Input should be a valid boolean"),
        ({"dry_run": False}, "exchange.key: dry_run is false but exchange.key/exchange.secret are missing"),
        ({"pair_whitelist": ["BTC", "BTC-USD"]}, "pair_whitelist[1]: 'BTC-USD' is not a pair"),
        ({"pair_whitelist": ["ETH/BTC"]}, "pair_whitelist[0]: 'ETH/BTC' is not quoted in USDT"),
        ({"pair_whitelist": ["BTC", "BTCUSDT"]}, "pair_whitelist: pairs listed twice: BTC/USDT:USDT"),
        ({"pair_whitelist": []}, "pair_whitelist: List should have at least 1 item"),
        ({"timeframes": ["7m"]}, "timeframes[0]: Input should be"),
        ({"margin_mode": "isolated"}, "margin_mode: Input should be 'cross' (got 'isolated')"),
        ({"stake_amount": -1}, "stake_amount: must be a positive number or 'unlimited' (got -1)"),
        ({"telegram": {"timezone": "Mars/Olympus"}}, "telegram.timezone: unknown time zone 'Mars/Olympus'"),
        ({"telegram": {"report_time": "25:00"}}, "telegram.report_time: report_time must be HH:MM"),
        ({"telegram": {"users": {"42": "root"}}}, "telegram.users.42: Input should be 'viewer', 'trader' or 'admin'"),
        ({"telegram": {"users": {"alice": "admin"}}}, "telegram.users: key 'alice'"),
        ({"telegram": {"enabled": True}}, "telegram.token: telegram.enabled is true but no token is set"),
        (
            {"risk": {"take_profit": [{"move": 0.01, "close": 0.5}, {"move": 0.02, "close": 0.2}]}},
            "risk.take_profit: take-profit close shares must add up to 1",
        ),
        ({"risk": {"latency": {"safe_ms": 600}}}, "risk.latency: latency tiers must ascend"),
        ({"metrics": {"port": 70000}}, "metrics.port: Input should be less than or equal to 65535"),
        ({"strategy": "moonshot"}, "strategy: unknown strategy 'moonshot' (known: breakout, master, oscillation, rsi_bollinger, trend)"),
        ({"simulator": {"speed": 0}}, "simulator.speed: Input should be greater than 0"),
    ],
)
def test_bad_values_name_the_key_and_value(write_config, data: dict, expected: str) -> None:
    problems = problems_for(write_config, data)
    assert any(line.startswith(expected) for line in problems), problems


def test_every_problem_is_reported_at_once(write_config) -> None:
    problems = problems_for(write_config, {"leverage": 0, "bogus": 1, "pair_whitelist": ["??"], "log_level": "LOUD"})
    assert len(problems) == 4, problems


def test_secrets_are_never_echoed_in_errors(write_config) -> None:
    problems = problems_for(write_config, {"exchange": {"key": 12345678}, "telegram": {"token": ["abcdefgh"]}})
    text = "\n".join(problems)
    assert "12345678" not in text and "abcdefgh" not in text
    assert "exchange.key" in text and "telegram.token" in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{", "invalid JSON at line 1"), ("[1, 2]", "top level must be a JSON object")],
)
def test_unreadable_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.json", environ={})


def test_environment_overrides_use_the_seed_names(write_config) -> None:
    path = write_config({"max_open_trades": 2, "log_level": "DEBUG"})
    env = {
        "BINANCE_API_KEY": KEY,
        "BINANCE_API_SECRET": SECRET,
        "TELEGRAM_TOKEN": "123:telegram-token",
        "TELEGRAM_CHAT_ID": "-100200",
        "DRY_RUN": "false",
        "STAKE_AMOUNT": "125.50",
        "MAX_OPEN_TRADES": "5",
        "LOG_LEVEL": "warning",
    }
    s = load_settings(path, environ=env)
    assert s.exchange.key.get_secret_value() == KEY
    assert s.telegram.token.get_secret_value() == "123:telegram-token"
    assert s.telegram.chat_id == -100200
    assert s.dry_run is False
    assert s.stake_amount == Decimal("125.50")
    assert (s.max_open_trades, s.log_level) == (5, "WARNING")


def test_precedence_file_then_dotenv_then_environment(write_config, tmp_path: Path) -> None:
    path = write_config({"max_open_trades": 2})
    dotenv = tmp_path / ".env"
    dotenv.write_text("MAX_OPEN_TRADES=4\nLOG_LEVEL=ERROR\nSTAKE_AMOUNT=\n")
    s = load_settings(path, environ={"MAX_OPEN_TRADES": "7"}, dotenv_path=dotenv)
    assert s.max_open_trades == 7  # environment beats .env
    assert s.log_level == "ERROR"  # .env beats the file and the default
    assert s.stake_amount == "unlimited"  # an empty value is "not set"
    assert load_settings(path, environ={}, dotenv_path=None).max_open_trades == 2


def test_bad_environment_values_are_named(write_config) -> None:
    problems = problems_for(write_config, {}, {"DRY_RUN": "perhaps", "MAX_OPEN_TRADES": "0", "LOG_LEVEL": "loud"})
    assert "DRY_RUN: expected true/false (got 'perhaps')" in problems
    assert any(p.startswith("max_open_trades:") and p.endswith("[from MAX_OPEN_TRADES]") for p in problems)
    assert any(p.startswith("log_level:") and p.endswith("[from LOG_LEVEL]") for p in problems)


def test_config_path_from_environment(write_config) -> None:
    path = write_config({"leverage": 10})
    assert load_settings(None, environ={"BSMART_CONFIG": str(path)}).leverage == 10


def test_secret_lookup_fills_only_blanks(write_config) -> None:
    path = write_config({"dry_run": False, "exchange": {"key": KEY}})
    seen = []

    def lookup(user_data: Path, name: str) -> str | None:
        seen.append(name)
        return {"binance_api_key": "from-store-key", "binance_api_secret": SECRET}.get(name)

    s = load_settings(path, environ={}, secret_lookup=lookup)
    assert s.exchange.key.get_secret_value() == KEY  # the file's value stays
    assert s.exchange.secret.get_secret_value() == SECRET  # the blank is filled
    assert "binance_api_key" not in seen


def test_redacted_dump_hides_every_secret() -> None:
    s = load_settings(None, environ={"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "TELEGRAM_TOKEN": "9:tok-en-value"})
    dump = json.dumps(redacted_dump(s))
    assert KEY not in dump and SECRET not in dump and "tok-en-value" not in dump
    assert redacted_dump(s)["exchange"]["key"] == "***"
    assert redacted_dump(s)["leverage"] == 25


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("BTC", "BTC/USDT:USDT"),
        ("btcusdt", "BTC/USDT:USDT"),
        ("BTC/USDT", "BTC/USDT:USDT"),
        (" eth/usdt:usdt ", "ETH/USDT:USDT"),
        ("1000PEPEUSDT", "1000PEPE/USDT:USDT"),
        ("USDT", "USDT/USDT:USDT"),
    ],
)
def test_pair_forms(text: str, pair: str) -> None:
    assert normalize_pair(text) == pair


@pytest.mark.parametrize("text", ["", "BTC-USDT", "BTC/USD", "BTC/USDT:BTC", "BTC//USDT", "ÄBC", "BTC USDT"])
def test_malformed_pairs(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_pair(text)


@given(st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True))
def test_normalization_is_idempotent(base: str) -> None:
    pair = normalize_pair(f"{base}/USDT")
    assert normalize_pair(pair) == pair
    assert exchange_symbol(pair) == f"{base}USDT"
    assert file_stem(pair) == f"{base}_USDT_USDT"
