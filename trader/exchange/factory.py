"""Build the exchange client from settings: the one place that decides which host and which keys are used."""

from __future__ import annotations

from trader.config.schema import Settings
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.latency import LatencyMonitor


def client_from_settings(settings: Settings, *, with_keys: bool = True) -> ExchangeClient:
    ex = settings.exchange
    latency = settings.risk.latency
    return ExchangeClient(
        ClientOptions(
            api_url=str(ex.api_url).rstrip("/") if ex.api_url else None,
            ws_url=str(ex.ws_url).rstrip("/") if ex.ws_url else None,
            api_key=ex.key.get_secret_value() if (with_keys and ex.key) else None,
            secret=ex.secret.get_secret_value() if (with_keys and ex.secret) else None,
            timeout_ms=ex.timeout_ms,
            recv_window_ms=ex.recv_window_ms,
            live=not settings.dry_run,
        ),
        latency=LatencyMonitor(latency.safe_ms, latency.no_entries_ms, latency.emergency_ms, latency.hold_seconds),
    )
