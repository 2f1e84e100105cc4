"""Real inputs for the report tests: a backtest on the shipped candles and live-style views built from it.

The folder goes on sys.path so the tests can import ``report_helpers`` (with ``--import-mode=importlib`` test
folders are not importable otherwise); the name is unique so it cannot meet another folder's helpers."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from trader.backtest.runner import BacktestRequest, BacktestResult, parse_timerange, run_backtest
from trader.data.store import bundled_data_dir, load_candles
from trader.service.views import BalanceView, PositionView

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

PAIRS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


@pytest.fixture(scope="session")
def backtest() -> BacktestResult:
    """A week of 5m bars on three pairs: ~0.3 s, and about a hundred trades across all three."""
    start, end = parse_timerange("20250510-20250517")
    result = run_backtest(BacktestRequest(pairs=PAIRS, timeframe="5m", start_ms=start, end_ms=end))
    assert len(result.trades) > 20 and {t.pair for t in result.trades} == set(PAIRS)
    return result


@pytest.fixture(scope="session")
def eth_window(backtest: BacktestResult) -> tuple[pd.DataFrame, list]:
    """Six hours of real 1m ETH candles around trades of the backtest, and those trades."""
    trades = [t for t in backtest.trades if t.pair == "ETH/USDT:USDT"]
    start = trades[len(trades) // 2].open_ms - 3 * 3_600_000
    start -= start % 3_600_000
    frame = load_candles(bundled_data_dir(), "ETH/USDT:USDT", "1m", start_ms=start, end_ms=start + 6 * 3_600_000)
    assert len(frame) == 360
    return frame, trades


def _liq(entry: Decimal, side: str, leverage: int, mmr: Decimal = Decimal("0.004")) -> Decimal:
    """Isolated-margin liquidation price with a flat maintenance rate: close enough for a view in a test."""
    step = Decimal(1) / leverage - mmr
    return entry * (1 - step) if side == "long" else entry * (1 + step)


@pytest.fixture(scope="session")
def positions(backtest: BacktestResult) -> list[PositionView]:
    """One open position per pair at the last entry of the backtest, marked at the last close of the window."""
    out = []
    for pair in PAIRS:
        t = [x for x in backtest.trades if x.pair == pair][-1]
        frame = load_candles(bundled_data_dir(), pair, "1m", start_ms=t.open_ms, end_ms=t.close_ms + 60_000)
        entry = Decimal(repr(t.entry_price))
        mark = Decimal(repr(float(frame["close"].iloc[-1])))
        amount = Decimal(repr(t.qty))
        liq = _liq(entry, t.side, backtest.leverage)
        sign = 1 if t.side == "long" else -1
        out.append(PositionView(
            pair=pair, side=t.side, amount=amount, entry_price=entry, mark_price=mark, liquidation_price=liq,
            liquidation_distance=abs(mark - liq) / mark, unrealized_pnl=sign * (mark - entry) * amount,
            notional=mark * amount, leverage=backtest.leverage,
            stop_price=entry * (Decimal("0.99") if t.side == "long" else Decimal("1.01")),
        ))
    return out


@pytest.fixture(scope="session")
def balance(positions: list[PositionView], backtest: BacktestResult) -> BalanceView:
    wallet = Decimal(repr(backtest.final_wallet))
    upnl = sum((p.unrealized_pnl for p in positions), Decimal(0))
    maint = sum((p.notional * Decimal("0.004") for p in positions), Decimal(0))
    return BalanceView(wallet=wallet, available=wallet - maint * 10, unrealized_pnl=upnl,
                       margin_balance=wallet + upnl, maintenance_margin=maint)
