"""Screening engine (issue 16): a compiled twin of the Backtrader path for fast parameter search.

``run_screening(request, data)`` answers a ``BacktestRequest`` with the same ``BacktestResult`` as
``trader.backtest.runner.run_backtest``, trade for trade (tests/screening/test_parity.py), for strategies that have
a twin (``twin_for``); others run on Backtrader. Modules: ``rules`` (numba copies of the per-fill money rules,
tested equal to trader.model's), ``kernel`` (the broker's bar loop and the strategy's position management),
``reference`` (the reference strategy's entry decision through the project's sizing functions), ``engine`` (data
preparation, runs, results).
"""
