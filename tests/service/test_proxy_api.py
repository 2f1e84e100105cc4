"""The proxies are the bot's whole view of the engine side: every public coroutine of each façade is listed on its
proxy (so none is unreachable), and nothing else passes through (no synchronous attribute of another thread)."""

from __future__ import annotations

import inspect

import pytest

from trader.service.proxy import ResearchProxy, ServiceProxy
from trader.service.research import ResearchService
from trader.service.service import TradingService

# Coroutines the composition root calls on the service's own loop, never from a front end.
INTERNAL = {"on_event", "resume_interrupted_flatten", "protect_positions"}


def _public_coroutines(cls: type) -> set[str]:
    return {n for n, f in inspect.getmembers(cls, inspect.iscoroutinefunction) if not n.startswith("_")}


@pytest.mark.parametrize("facade, proxy", [(TradingService, ServiceProxy), (ResearchService, ResearchProxy)])
def test_every_public_coroutine_is_on_the_proxy_and_nothing_else(facade: type, proxy: type) -> None:
    exposed = {n for n, v in vars(proxy).items() if not n.startswith("_") and callable(v)}
    assert exposed == _public_coroutines(facade) - INTERNAL


def test_no_attribute_passes_through() -> None:
    proxy = ServiceProxy.__new__(ServiceProxy)
    for name in ("leverage", "pairs", "client", "settings", "strategy_params", "core"):
        assert not hasattr(proxy, name), name
