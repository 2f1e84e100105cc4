"""One rule for every mutating call of a service façade: it is audited with who asked, what, and how it ended, and
exchange errors leave it as a ServiceError the front ends know how to show."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from trader.bootstrap import Core
from trader.exchange.errors import ErrorClass, ExchangeError
from trader.persistence.audit import Actor
from trader.service.errors import ServiceError

T = TypeVar("T")
REFUSALS = ("refused", "conflict", "invalid_argument", "not_running")


async def audited(core: Core, actor: Actor, action: str, arguments: dict[str, object],
                  fn: Callable[[], Awaitable[T]]) -> T:
    try:
        result = await fn()
    except ServiceError as exc:
        outcome = "refused" if exc.code in REFUSALS else "failed"
        await asyncio.to_thread(core.audit.record, actor, action, arguments, outcome, exc.message)
        raise
    except ExchangeError as exc:
        await asyncio.to_thread(core.audit.record, actor, action, arguments, "failed", str(exc))
        code = "permission" if exc.error_class is ErrorClass.PERMISSION else "exchange"
        raise ServiceError(code, str(exc), reason="exchange_error", params={"detail": str(exc)}) from exc
    await asyncio.to_thread(core.audit.record, actor, action, arguments, "ok", "")
    return result
