from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.cli import COMMAND_MODULES, build_parser, main
from bot.main_job import run_main_job
from trader.config.loader import load_settings
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import head_revision
from trader.persistence.runtime_state import RuntimeStateStore

SECRET = "Qm9vdGVkU2VjcmV0VmFsdWUxMjM0NTY3ODkw"
BSMART = [sys.executable, "-m", "bot.cli"]


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_help_lists_only_registered_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    names = _subcommands()
    assert len(names) == len(COMMAND_MODULES)
    for name in names:
        assert name in out


@pytest.mark.parametrize("name", _subcommands())
def test_every_listed_command_has_working_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert "usage: bsmart" in capsys.readouterr().out


def test_config_check_exits_2_with_one_line_per_problem(write_config, isolated: Path, capsys) -> None:
    path = write_config({"leverage": 200, "pair_whitelist": ["BTC-USD"], "extra": True})
    assert _exit_code(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "configuration error:"
    assert len(err) == 4
    assert any("leverage:" in line and "200" in line for line in err)
    assert not (isolated / "user_data").exists()  # nothing started, nothing written


def test_config_check_ok(write_config, capsys) -> None:
    assert main(["config", "check", "--config", str(write_config({"leverage": 10}))]) == 0
    assert "configuration OK: dry-run, leverage 10x" in capsys.readouterr().out


def test_config_show_redacts(capsys, monkeypatch) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", SECRET)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET[::-1])
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and SECRET[::-1] not in out
    shown = json.loads(out)
    assert shown["exchange"]["key"] == "***" and shown["leverage"] == 25


def test_secrets_cli_feeds_the_config(write_config, isolated: Path, capsys, monkeypatch) -> None:
    for name, value in (("binance_api_key", SECRET), ("binance_api_secret", SECRET[::-1])):
        monkeypatch.setattr(sys, "stdin", _Stdin(value + "\n"))
        assert main(["secrets", "set", name, "--stdin"]) == 0
    assert SECRET not in (isolated / "user_data" / "secrets.json").read_text()
    assert main(["secrets", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["binance_api_key", "binance_api_secret"]
    # Live mode needs keys: the store supplies them, and `config show` still never prints them.
    live = write_config({"dry_run": False})
    assert main(["config", "check", "--config", str(live)]) == 0
    assert main(["config", "show", "--config", str(live)]) == 0
    assert SECRET not in capsys.readouterr().out
    assert main(["secrets", "delete", "binance_api_key"]) == 0
    assert _exit_code(["config", "check", "--config", str(live)]) == 2


def test_db_upgrade_and_current(capsys) -> None:
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.startswith("empty: behind")
    assert main(["db", "upgrade"]) == 0
    assert f"empty -> {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{head_revision()}: up to date"


async def test_main_job_runs_and_stops_cleanly(write_config, isolated: Path) -> None:
    settings = load_settings(write_config({"metrics": {"port": 0}}), environ={})
    stop = asyncio.Event()
    ready: dict[str, object] = {}

    def on_ready(runtime, info: dict[str, object]) -> None:
        ready.update(info)

    task = asyncio.create_task(run_main_job(settings, stop, heartbeat_s=0.05, on_ready=on_ready))
    for _ in range(200):
        if ready:
            break
        await asyncio.sleep(0.01)
    metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(ready["metrics"], timeout=5).read().decode())
    assert 'bsmart_info{mode="dry_run"' in metrics
    assert "bsmart_healthy 1.0" in metrics or "bsmart_uptime_seconds" in metrics
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0
    engine = make_engine(settings.resolved_db_url)
    state = RuntimeStateStore(make_session_factory(engine)).all()
    engine.dispose()
    assert state["last_start"] <= state["last_stop"]
    assert (isolated / "user_data" / "logs" / "trading.log").read_text().count("bsmart stopped cleanly") == 1


def test_bsmart_run_exits_0_on_ctrl_c(write_config, isolated: Path) -> None:
    config = write_config({"metrics": {"enabled": False}})
    env = {k: v for k, v in os.environ.items() if k not in ("BSMART_CONFIG",)}
    proc = subprocess.Popen(
        [*BSMART, "run", "--config", str(config)], cwd=isolated, env=env, stderr=subprocess.PIPE, text=True
    )
    log = isolated / "user_data" / "logs" / "trading.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "bsmart started" in log.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "bsmart stopped cleanly" in err
    assert "Traceback" not in err


class _Stdin:
    def __init__(self, text: str):
        self._text = text

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self._text


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)
