"""Screening engine (issue 16): a compiled twin of the Backtrader path for fast parameter search.

``run_screening(request, data)`` answers a ``BacktestRequest`` with the same ``BacktestResult`` as
``trader.backtest.runner.run_backtest``, trade for trade (tests/screening/test_parity.py), for strategies that have
a twin (``twin_for``); others run on Backtrader. Modules: ``rules`` (numba copies of the per-fill money rules,
tested equal to trader.model's), ``kernel`` (the broker's bar loop over one or more pairs in one cross-margin
account, and the strategies' position management), ``reference`` and ``managed`` (the entry decisions of the
reference strategy and of the oscillation/breakout/trend strategies through the project's own sizing and risk-book
functions), ``engine`` (data preparation, runs, the risk book's clock and notifications, results), ``parity`` (the
contract as one comparison).
"""
