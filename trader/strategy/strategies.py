"""The three setups as standalone strategies (each usable alone, hyperopt spaces on the class).

    bsmart backtest --strategy oscillation --timeframe 5m ...   # 5m RSI extremes with a band touch
    bsmart backtest --strategy breakout --timeframe 5m ...      # 15m range breakout on volume, ATR trailing exit
    bsmart backtest --strategy trend --timeframe 5m ...         # 1h three-SMA trend, pullback entries, tiered profit

The feed may be 1m or 5m: every other timeframe is built from it inside ``compute_indicators`` (multitf.py), so
the backtest and the live feed compute the same columns. Setups, grades and the position life cycle are in
setups.py and managed.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import backtrader as bt
import numpy as np

from trader.optimize.spaces import Dimension
from trader.strategy.base import Candles
from trader.strategy.managed import (
    BRK_PARAMS,
    BRK_SPACES,
    COMMON_PARAMS,
    COMMON_SPACES,
    OSC_PARAMS,
    OSC_SPACES,
    TRD_PARAMS,
    TRD_SPACES,
    Candidate,
    ManagedStrategy,
)
from trader.strategy.setups import SETUPS, base_columns


def setup_lines(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{k}" for k in ("signal", "agree", "exit_long", "exit_short", "atr"))


def prefixed(prefix: str, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}_{k}": v for k, v in cols.items() if k not in ("ready", "vote_mean")}


class _SingleSetup(ManagedStrategy):
    _setup: ClassVar[str] = ""

    @classmethod
    def compute_indicators(cls, candles: Candles, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        s = SETUPS[cls._setup]
        cols = base_columns(s, candles, params, who=cls.__name__)
        return {"ready": cols["ready"], **prefixed(s.prefix, cols)}

    def start(self) -> None:
        super().start()
        prefix = SETUPS[self._setup].prefix
        self._sig = {d: (getattr(d.lines, f"{prefix}_signal"), getattr(d.lines, f"{prefix}_agree"), d.lines.ready)
                     for d in self.datas}
        self._setup_obj = SETUPS[self._setup]

    def _candidate(self, d: bt.DataBase) -> Candidate | None:
        sig, agree, ready = self._sig[d]
        s = sig[0]
        if s == 0.0:
            if ready[0] != 1.0:
                self._note_cold(d)
            return None
        return Candidate(1 if s > 0 else -1, self._setup_obj, int(agree[0]))


class OscillationStrategy(_SingleSetup):
    """1–5m mean reversion: RSI extreme + Bollinger band touch; exit on the reverse RSI cross or +0.5–1 %."""

    _setup = "oscillation"
    _setups = ("oscillation",)
    params = COMMON_PARAMS + OSC_PARAMS + BRK_PARAMS + TRD_PARAMS
    indicator_lines: ClassVar[tuple[str, ...]] = ("ready", *setup_lines("osc"))
    spaces: ClassVar[dict[str, tuple[Dimension, ...]]] = {**COMMON_SPACES, **OSC_SPACES}


class BreakoutStrategy(_SingleSetup):
    """15m–1h breakout of the prior high/low on volume; ATR trailing exit."""

    _setup = "breakout"
    _setups = ("breakout",)
    params = COMMON_PARAMS + OSC_PARAMS + BRK_PARAMS + TRD_PARAMS
    indicator_lines: ClassVar[tuple[str, ...]] = ("ready", *setup_lines("brk"))
    spaces: ClassVar[dict[str, tuple[Dimension, ...]]] = {**COMMON_SPACES, **BRK_SPACES}


class TrendStrategy(_SingleSetup):
    """1–4h trend: three SMAs aligned, entry on a pullback to support or the middle average; exit on reversal or
    tiered profit."""

    _setup = "trend"
    _setups = ("trend",)
    params = COMMON_PARAMS + OSC_PARAMS + BRK_PARAMS + TRD_PARAMS
    indicator_lines: ClassVar[tuple[str, ...]] = ("ready", *setup_lines("trd"))
    spaces: ClassVar[dict[str, tuple[Dimension, ...]]] = {**COMMON_SPACES, **TRD_SPACES}
