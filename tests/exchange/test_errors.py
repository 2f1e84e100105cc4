from __future__ import annotations

import random

import ccxt
import pytest

from trader.exchange.backoff import BackoffPolicy, with_retries
from trader.exchange.errors import ErrorClass, ExchangeError, classify_code, classify_exception, parse_body


@pytest.mark.parametrize(
    ("code", "status", "cls", "unknown"),
    [
        (-1001, 400, ErrorClass.TEMPORARY, False),  # internal error: retry
        (-1007, 408, ErrorClass.TEMPORARY, True),  # backend timeout: execution status unknown
        (-1021, 400, ErrorClass.TEMPORARY, False),  # clock skew: resync and retry
        (None, 503, ErrorClass.TEMPORARY, True),
        (None, 429, ErrorClass.TEMPORARY, False),
        (None, 418, ErrorClass.TEMPORARY, False),
        (-1111, 400, ErrorClass.PARAMETER, False),  # precision
        (-4164, 400, ErrorClass.PARAMETER, False),  # min notional
        (-2021, 400, ErrorClass.PARAMETER, False),  # would immediately trigger
        (-1022, 400, ErrorClass.PERMISSION, False),  # bad signature
        (-2015, 401, ErrorClass.PERMISSION, False),  # key, IP or permission
        (-2019, 400, ErrorClass.ACCOUNT, False),  # margin insufficient
        (-2027, 400, ErrorClass.ACCOUNT, False),  # max position at this leverage
    ],
)
def test_each_binance_code_lands_in_its_class(code, status, cls, unknown) -> None:
    info = classify_code(code, status, "x")
    assert info.error_class is cls
    assert info.state_unknown is unknown
    assert info.retryable is (cls is ErrorClass.TEMPORARY)


def test_not_found_is_flagged() -> None:
    assert classify_code(-2013, 400).not_found and classify_code(-2011, 400).not_found


def test_ccxt_exceptions_are_classified_from_the_body_they_carry() -> None:
    exc = ccxt.ExchangeError('binanceusdm {"code":-2019,"msg":"Margin is insufficient."}')
    info = classify_exception(exc)
    assert (info.error_class, info.code, info.message) == (ErrorClass.ACCOUNT, -2019, "Margin is insufficient.")
    assert classify_exception(ccxt.RequestTimeout("binanceusdm POST /order")).state_unknown
    assert classify_exception(ccxt.AuthenticationError("nope")).error_class is ErrorClass.PERMISSION
    tagged = ccxt.ExchangeError("whatever")
    tagged.binance_code, tagged.http_status = -1003, 429
    assert classify_exception(tagged).error_class is ErrorClass.TEMPORARY


def test_parse_body_handles_garbage() -> None:
    assert parse_body("<html>bad gateway</html>") == (None, "<html>bad gateway</html>")
    assert parse_body('{"code": "-4003", "msg": "Quantity less than or equal to zero."}')[0] == -4003


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    policy = BackoffPolicy(attempts=5, base_s=0.1, cap_s=1.0)
    rng = random.Random(7)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > 0.6 * ceiling  # the spread really covers the range


async def test_temporary_errors_are_retried_then_raised() -> None:
    calls, slept = [], []

    async def failing():
        calls.append(1)
        raise ExchangeError(classify_code(-1001, 400, "internal"))

    async def sleep(s: float) -> None:
        slept.append(s)

    with pytest.raises(ExchangeError):
        await with_retries(failing, BackoffPolicy(attempts=4), name="t", sleep=sleep)
    assert len(calls) == 4 and len(slept) == 3


@pytest.mark.parametrize("code", [-1111, -1022, -2019])
async def test_other_classes_are_never_retried(code: int) -> None:
    calls = []

    async def failing():
        calls.append(1)
        raise ExchangeError(classify_code(code, 400, "x"))

    with pytest.raises(ExchangeError):
        await with_retries(failing, BackoffPolicy(attempts=5), name="t", sleep=_no_sleep)
    assert len(calls) == 1


async def test_retry_after_is_honoured_and_veto_stops_retries() -> None:
    slept = []

    async def sleep(s: float) -> None:
        slept.append(s)

    outcomes = [ExchangeError(classify_code(None, 429, "slow down", retry_after_s=3.0)), "ok"]

    async def op():
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert await with_retries(op, BackoffPolicy(), name="t", sleep=sleep) == "ok"
    assert slept == [3.0]

    async def unknown():
        raise ExchangeError(classify_code(None, 503, "unknown"))

    with pytest.raises(ExchangeError):
        await with_retries(unknown, BackoffPolicy(), name="t", may_retry=lambda e: not e.info.state_unknown,
                           sleep=_no_sleep)


async def _no_sleep(_: float) -> None:
    return None
