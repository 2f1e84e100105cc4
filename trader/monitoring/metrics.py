"""Prometheus metrics on a registry of our own (no process-wide default registry: tests run many instances)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Info, start_http_server

from trader import __version__
from trader.monitoring.health import HealthSnapshot


@dataclass
class Metrics:
    registry: CollectorRegistry
    up: Gauge
    uptime: Gauge
    db_latency: Gauge
    disk_free: Gauge

    def observe(self, health: HealthSnapshot) -> None:
        self.up.set(1 if health.ok else 0)
        self.uptime.set(health.uptime_s)
        self.db_latency.set((health.db_latency_ms or 0.0) / 1000)
        self.disk_free.set(health.disk_free_bytes)


def make_metrics(dry_run: bool) -> Metrics:
    registry = CollectorRegistry()
    info = Info("bsmart", "binance-smart build and mode", registry=registry)
    info.info({"version": __version__, "mode": "dry_run" if dry_run else "live"})
    return Metrics(
        registry=registry,
        up=Gauge("bsmart_healthy", "1 when the database answers and disk space is sufficient", registry=registry),
        uptime=Gauge("bsmart_uptime_seconds", "Seconds since the process started", registry=registry),
        db_latency=Gauge("bsmart_db_latency_seconds", "Round trip of a trivial database query", registry=registry),
        disk_free=Gauge("bsmart_disk_free_bytes", "Free bytes on the user_data volume", registry=registry),
    )


def serve_metrics(metrics: Metrics, host: str, port: int) -> tuple[Any, int]:
    """Start the /metrics HTTP endpoint on its own thread; returns (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, server.server_address[1]
