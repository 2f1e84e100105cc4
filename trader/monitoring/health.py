"""Process health: what the daily report and /health show, and what the metrics endpoint exports."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class HealthSnapshot:
    uptime_s: float
    db_ok: bool
    db_latency_ms: float | None
    db_error: str
    disk_free_bytes: int
    disk_total_bytes: int

    @property
    def ok(self) -> bool:
        # Under 200 MB free, SQLite writes and log rotation start failing; call that unhealthy before it happens.
        return self.db_ok and self.disk_free_bytes > 200 * 1024 * 1024


class HealthMonitor:
    def __init__(self, engine: Engine, data_dir: Path):
        self._engine = engine
        self._data_dir = Path(data_dir)
        self._started = time.monotonic()

    def snapshot(self) -> HealthSnapshot:
        db_ok, latency, error = True, None, ""
        t0 = time.perf_counter()
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            latency = (time.perf_counter() - t0) * 1000
        except Exception as exc:  # any driver error means "database unavailable"; keep its text for the report
            db_ok, error = False, f"{type(exc).__name__}: {exc}"
        usage = shutil.disk_usage(self._data_dir if self._data_dir.exists() else Path("."))
        return HealthSnapshot(
            uptime_s=time.monotonic() - self._started,
            db_ok=db_ok,
            db_latency_ms=latency,
            db_error=error,
            disk_free_bytes=usage.free,
            disk_total_bytes=usage.total,
        )
