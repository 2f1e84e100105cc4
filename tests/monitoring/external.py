"""The rule for tests that need a server or tool CI installs (.ci/run: Prometheus, PostgreSQL): locally they skip when
it is absent; under CI (CI=true) a missing one is a failure, so CI cannot go green without running them."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(available: bool, what: str) -> None:
    if available:
        return
    if under_ci():
        pytest.fail(f"{what} is required under CI (.ci/run installs it)")
    pytest.skip(f"{what} is not available here (CI installs it)")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"the {name} binary")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
