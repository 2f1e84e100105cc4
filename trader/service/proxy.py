"""The service façades seen from another event loop (the bot's): an explicit list of coroutine methods, each run
on the loop that owns the exchange client and the engine. Nothing synchronous passes through — a front end reads
state with a call like any other (``leverage_now``, ``whitelist``), so it never touches objects that belong to
another thread.

A command's path is then: bot/telegram/handlers/<group>.py → this proxy → trader/service/service.py (trading) or
trader/service/research.py (backtests, hyperopt, models) → the engine (trader/live/engine.py) or the exchange client
(trader/exchange/client.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from trader.service.research import ResearchService
from trader.service.service import TradingService


def _remote(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
        coro = getattr(self._target, name)(*args, **kwargs)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    call.__name__ = name
    return call


class _Proxy:
    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop):
        self._target = target
        self._loop = loop


class ServiceProxy(_Proxy):
    """TradingService on its own loop."""

    def __init__(self, service: TradingService, loop: asyncio.AbstractEventLoop):
        super().__init__(service, loop)

    # control
    start = _remote("start")
    stop = _remote("stop")
    pause = _remote("pause")
    resume = _remote("resume")
    flatten = _remote("flatten")
    set_leverage = _remote("set_leverage")
    whitelist_add = _remote("whitelist_add")
    whitelist_remove = _remote("whitelist_remove")
    force_enter = _remote("force_enter")
    force_exit = _remote("force_exit")
    apply_strategy_params = _remote("apply_strategy_params")
    set_strategy = _remote("set_strategy")
    reconcile = _remote("reconcile")
    # preflights: what a change would be refused with now (front ends ask before offering a confirmation)
    check_start = _remote("check_start")
    check_stop = _remote("check_stop")
    check_leverage = _remote("check_leverage")
    check_whitelist_add = _remote("check_whitelist_add")
    check_whitelist_remove = _remote("check_whitelist_remove")
    check_force_enter = _remote("check_force_enter")
    check_force_exit = _remote("check_force_exit")
    check_strategy = _remote("check_strategy")
    check_strategy_params = _remote("check_strategy_params")
    # reads
    status = _remote("status")
    health = _remote("health")
    positions = _remote("positions")
    balance = _remote("balance")
    pnl = _remote("pnl")
    trades = _remote("trades")
    performance = _remote("performance")
    whitelist = _remote("whitelist")
    leverage_now = _remote("leverage_now")
    applied_strategy_params = _remote("applied_strategy_params")
    strategy_now = _remote("strategy_now")
    signals = _remote("signals")
    risk = _remote("risk")
    propose_risk_params = _remote("propose_risk_params")
    execution = _remote("execution")
    check_ledger = _remote("check_ledger")
    now = _remote("now")


class ResearchProxy(_Proxy):
    """ResearchService on the service's loop."""

    def __init__(self, research: ResearchService, loop: asyncio.AbstractEventLoop):
        super().__init__(research, loop)

    start_backtest = _remote("start_backtest")
    cancel_backtest = _remote("cancel_backtest")
    backtests = _remote("backtests")
    backtest = _remote("backtest")
    backtest_data = _remote("backtest_data")
    close_backtests = _remote("close_backtests")
    start_hyperopt = _remote("start_hyperopt")
    cancel_hyperopt = _remote("cancel_hyperopt")
    models = _remote("models")
    predict = _remote("predict")
    start_train = _remote("start_train")
    cancel_train = _remote("cancel_train")
