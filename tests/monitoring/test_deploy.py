"""The monitoring files the repo ships: Prometheus configuration and alert rules (checked and unit-tested with
promtool), the Grafana dashboard (every series it queries exists), and docker-compose.yml (services, images and
every mounted file)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.external import require_binary
from trader.monitoring.metrics import exposed_names, make_metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "bsmart.json"
# Series Prometheus itself makes for every target; everything else a query names must come from bsmart.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "le", "time", "vector", "sum", "rate", "increase", "histogram_quantile", "absent", "max",
                "min", "avg", "count", "topk", "irate", "delta", "changes"}


def _exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "expr" and isinstance(v, str)] + [
            e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def series_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers not inside {...} labels, "strings", [ranges], not
    functions (followed by "("), not keywords or label names after by/without."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group(0) in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d*[smhdwy]", match.group(0)) or match.group(0) in ("e", "Inf", "NaN"):
            continue
        names.add(match.group(0))
    return names


def test_series_names_parser() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, endpoint) (rate(bsmart_rest_latency_seconds_bucket{job="x"}[5m])))'
            ' / on (instance) bsmart_api_weight_limit offset 5m > 0.8 or vector(0)')
    assert series_names(expr) == {"bsmart_rest_latency_seconds_bucket", "bsmart_api_weight_limit"}


def test_dashboard_queries_only_series_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _exprs(dashboard["panels"])
    assert len(exprs) >= 25
    used = set().union(*(series_names(e) for e in exprs))
    known = exposed_names(make_metrics(dry_run=True).registry) | PROMETHEUS_SERIES
    assert used - known == set()
    # Every metric family bsmart exports has a panel (besides build info and created timestamps).
    families = {n for n in known if n.startswith("bsmart_") and not n.endswith("_created")}
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    missing = {n for n in families if re.sub(r"_(bucket|count|sum)$", "", n) not in shown}
    assert missing <= {"bsmart_info", "bsmart_uptime_seconds", "bsmart_account_read_timestamp_seconds",
                       "bsmart_process_virtual_memory_bytes", "bsmart_process_open_fds", "bsmart_process_max_fds",
                       "bsmart_process_start_time_seconds"}, missing


def test_dashboard_uses_the_provisioned_data_source() -> None:
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_name_only_series_that_exist() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    known = exposed_names(make_metrics(dry_run=True).registry) | PROMETHEUS_SERIES
    assert set().union(*(series_names(e) for e in exprs)) - known == set()
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"BsmartDown", "BsmartAbsent", "BsmartLatencyEmergency", "BsmartMarginRatioHigh",
            "BsmartExchangeErrorRate"} <= names


@pytest.mark.parametrize("args", [
    ["check", "config", "prometheus.yml"],
    ["check", "rules", "alerts.yml"],
    ["test", "rules", "alerts_test.yml"],
])
def test_promtool(args: list[str]) -> None:
    promtool = require_binary("promtool")
    done = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_compose_services_images_and_mounted_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"bsmart", "prometheus", "grafana"}
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert (ROOT / services["bsmart"]["build"] / "Dockerfile").is_file()
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if not source.startswith("."):
                assert source in named, f"{name}: volume {source} is not declared"
                continue
            if source in ("./user_data",):
                continue  # created at first start
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    # The files Prometheus loads are the ones promtool checks, at the paths its configuration names.
    prom_mounts = dict(m.split(":")[:2] for m in services["prometheus"]["volumes"])
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config_dir = Path(prom_mounts["./deploy/prometheus/prometheus.yml"]).parent
    for rule_file in config["rule_files"]:
        assert str(config_dir / rule_file) in prom_mounts.values()
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["bsmart:9108"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "bsmart.yml").read_text())
    grafana_mounts = dict(m.split(":")[:2] for m in services["grafana"]["volumes"])
    assert grafana_mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert grafana_mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_readme_documents_every_metric_and_only_those() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(bsmart_[a-z0-9_]+)`", section))
    registry = make_metrics(dry_run=True).registry
    families = list(registry.collect())
    assert documented - exposed_names(registry) - {f.name for f in families} == set()
    for family in families:
        spelled = {"counter": family.name + "_total", "info": family.name + "_info"}.get(family.type, family.name)
        short = "`_" + family.name.removeprefix("bsmart_process_") + "`"  # "(and `_open_fds`, …)"
        assert spelled in documented or short in section, f"{spelled} is not in README's Monitoring table"
