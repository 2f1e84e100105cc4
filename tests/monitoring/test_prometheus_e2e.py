"""A real Prometheus server scrapes a real ``bsmart run`` (embedded defaults: dry-run on the embedded simulator) and
evaluates the shipped alert rules: the scrape works, bsmart's series arrive, and BsmartDown fires once the process
is killed. Needs the prometheus binary (.ci/run installs Debian's package); without it this skips locally and fails
under CI=true."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.external import free_port, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
BSMART = [sys.executable, "-m", "bot.cli"]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def _wait(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def test_config(metrics_port: int, rules: Path) -> dict[str, Any]:
    """The shipped rules with every ``for:`` cut to 1s, scraped and evaluated every second: same expressions, a test
    that fits in seconds."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "bsmart", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }


test_config.__test__ = False  # a helper, not a test


@pytest.fixture
def prometheus_binary() -> str:
    return require_binary("prometheus")  # first, so a missing binary skips before bsmart starts


@pytest.fixture
def bsmart(isolated: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    config = isolated / "config.json"
    config.write_text(json.dumps({"metrics": {"port": port}}))
    env = {k: v for k, v in os.environ.items() if k != "BSMART_CONFIG"}
    proc = subprocess.Popen([*BSMART, "run", "--config", str(config)], cwd=isolated, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = isolated / "user_data" / "logs" / "trading.log"
    try:
        _wait("bsmart started", lambda: proc.poll() is not None or (log.exists() and "bsmart started" in
                                                                     log.read_text()), 90)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_prometheus_scrapes_bsmart_and_fires_engine_down(prometheus_binary: str, bsmart, isolated: Path) -> None:
    binary = prometheus_binary
    proc, metrics_port = bsmart
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    rules_path = isolated / "alerts.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    config_path = isolated / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(test_config(metrics_port, rules_path)))
    web_port = free_port()
    api = f"http://127.0.0.1:{web_port}"
    server = subprocess.Popen([binary, f"--config.file={config_path}", f"--storage.tsdb.path={isolated / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web_port}"],
                              stdout=subprocess.DEVNULL, stderr=(isolated / "prometheus.log").open("w"))

    def query(expr: str) -> list[dict[str, Any]]:
        answer = _get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def alerts() -> dict[str, str]:
        answer = _get(f"{api}/api/v1/alerts")
        return {a["labels"]["alertname"]: a["state"] for a in answer["data"]["alerts"]}

    try:
        _wait("prometheus ready", lambda: urllib.request.urlopen(f"{api}/-/ready", timeout=2).status == 200, 30)
        up = _wait("a successful scrape", lambda: [r for r in query('up{job="bsmart"}') if r["value"][1] == "1"], 30)
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
        equity = _wait("bsmart's equity in Prometheus", lambda: query("bsmart_equity_usdt"), 30)
        assert float(equity[0]["value"][1]) > 0
        assert query("bsmart_latency_tier")[0]["value"][1] in ("0", "1", "2", "3")  # start-up calls may be slow
        assert "BsmartDown" not in alerts()

        proc.kill()  # a crash: no clean shutdown, the endpoint just goes away
        proc.wait(10)
        started = time.monotonic()
        _wait("BsmartDown firing", lambda: alerts().get("BsmartDown") == "firing", 30)
        fired_after = time.monotonic() - started
        assert query('up{job="bsmart"}')[0]["value"][1] == "0"
        print(f"BsmartDown fired {fired_after:.1f}s after the kill (scrape and evaluation every 1s, for: 1s)")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
