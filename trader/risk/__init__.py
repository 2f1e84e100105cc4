"""The account's risk rules (risk-rules.md, issue 15): one implementation used by the backtest strategies, the live
engine (the same Backtrader strategies, and forced entries) and the service's /risk view.

- ``limits``: the rules' numbers as strategy parameters, read from the config's ``risk`` section (one mapping for
  ``bsmart backtest --config`` and the live engine);
- ``rules``: pure functions, one per rule (account tiers, loss streak, drawdown, volatility, frequency, regime,
  correlation) and ``decide_entry``, which combines them into one decision with every rule that acted;
- ``book``: ``RiskBook``, the per-run state the rules read (open risk per coin, loss streak, peak wallet, hourly
  closes, entry times) and the counts per rule a backtest result reports;
- ``gate``: the hook the market-side rules (liquidity tiers, exchange maintenance) plug into.
"""
