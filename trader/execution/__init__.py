"""Execution (issue 15): how an order goes to the market, and how well it went.

- ``optimiser``: per order, market or post-only limit (GTX) from spread, visible depth and urgency; large orders
  split into slices by visible depth (stricter above the large-account equity), with a time limit and a market
  fallback. Pure: the live desk carries the plan out (trader/live/slicing.py).
- ``quality``: the tape of one execution (decision price, fills, maker share, time to fill), slippage in basis
  points on every fill, and the per-pair summary /execution shows.
- ``market``: the live market-side watch on the engine loop: local order books, 24 h volume, liquidity tiers,
  the maintenance schedule; the gate the risk rules ask (trader/risk/gate.py) and the staged close.
"""
