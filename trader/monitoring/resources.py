"""Resource use from /proc and the file system (Linux; no extra dependency): the machine's CPU busy share since the
previous sample, this process's resident memory (bytes and share of RAM) and the data disk's used share.

A figure that cannot be read on this system is None, never a guess."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
MIN_CPU_WINDOW_S = 5.0  # a CPU share over a shorter window is noise (one busy moment reads as 100 %)


@dataclass(frozen=True)
class ResourceUse:
    cpu: float | None  # machine CPU busy share since the previous sample, 0..1
    rss_bytes: int | None
    rss_share: float | None  # of total RAM
    disk_share: float | None  # used share of the disk holding user_data
    disk_free_bytes: int | None

    def above(self, limit: float) -> list[str]:
        """Which figures exceed ``limit``, as text for a warning."""
        over = []
        for name, value in (("CPU", self.cpu), ("RSS", self.rss_share), ("disk", self.disk_share)):
            if value is not None and value > limit:
                over.append(f"{name} {value:.0%}")
        return over


def _cpu_times(proc: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _rss_bytes(proc: Path) -> int | None:
    try:
        for line in (proc / "self" / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _mem_total(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class ResourceSampler:
    def __init__(self, data_dir: Path, proc: Path = PROC, min_cpu_window_s: float = MIN_CPU_WINDOW_S):
        self.data_dir = Path(data_dir)
        self.proc = proc
        self.min_cpu_window_s = min_cpu_window_s
        self._last_cpu = _cpu_times(proc)
        self._last_at = time.monotonic()
        self._cpu: float | None = None

    def sample(self) -> ResourceUse:
        # Within the minimum window the previous figure stands and the baseline stays, so the window keeps growing.
        if time.monotonic() - self._last_at >= self.min_cpu_window_s:
            now = _cpu_times(self.proc)
            if now is not None and self._last_cpu is not None and now[1] > self._last_cpu[1]:
                self._cpu = (now[0] - self._last_cpu[0]) / (now[1] - self._last_cpu[1])
            self._last_cpu, self._last_at = now, time.monotonic()
        cpu = self._cpu
        rss, total = _rss_bytes(self.proc), _mem_total(self.proc)
        disk_share = free = None
        target = self.data_dir if self.data_dir.exists() else Path(os.getcwd())
        try:
            usage = shutil.disk_usage(target)
            disk_share, free = (usage.total - usage.free) / usage.total if usage.total else None, usage.free
        except OSError:
            pass
        return ResourceUse(cpu=cpu, rss_bytes=rss, rss_share=rss / total if rss and total else None,
                           disk_share=disk_share, disk_free_bytes=free)
