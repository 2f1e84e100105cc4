"""The exchange's rules and the money rules, in one place.

- ``instruments``: a contract's filters, liquidation fee and leverage brackets (``InstrumentSpec``), built from
  Binance's ``exchangeInfo`` entry and ``leverageBracket`` rows; fee schedule.
- ``money``: margin, PnL, fees, funding, tiered maintenance margin, liquidation price and fee (float USDT).
- ``rules``: dated snapshots of both exchange sources beside the candles (written by ``bsmart download``, bundled
  for the sample pairs), and the choice of the snapshot nearest a backtest's range.

The backtest, the live broker and desk, the service, flatten and sizing import these; the simulator keeps its own
Decimal implementation but reads its tables from the same snapshots.
"""

from trader.model.instruments import (
    Bracket,
    FeeSchedule,
    InstrumentSpec,
    MissingRules,
    as_brackets,
    brackets_from_api,
    brackets_from_table,
    brackets_from_tiers,
    spec_from_exchange,
)

__all__ = [
    "Bracket", "FeeSchedule", "InstrumentSpec", "MissingRules", "as_brackets", "brackets_from_api",
    "brackets_from_table", "brackets_from_tiers", "spec_from_exchange",
]
