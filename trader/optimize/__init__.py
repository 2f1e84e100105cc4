"""Parameter optimisation with optuna: grid search, NSGA-II and TPE over a strategy's declared spaces, judged
out of sample by rolling walk-forward folds.

Python API (what ``bsmart hyperopt`` and the Telegram /hyperopt command call)::

    from trader.optimize import HyperoptRequest, plan_hyperopt, run_hyperopt

    request = HyperoptRequest(strategy="rsi_bollinger", pairs=("BTC", "ETH"), timeframe="15m",
                              start_ms=None, end_ms=None,          # UTC ms, end exclusive; None = edge of the data
                              spaces=("buy", "sell"),              # declared on the strategy class; "all" = every one
                              epochs=100,                          # new trials per fold (per machine)
                              sampler="tpe",                       # "tpe" | "nsga2" | "grid"
                              loss="sharpe",                       # "sharpe" | "sortino" | "calmar" | "profit_drawdown"
                              folds=3,                             # or train_days=/test_days=
                              jobs=2,                              # worker processes
                              storage=None,                        # or "sqlite:///f.sqlite", "postgresql://…"
                              study_name=None, seed=42)
    plan = plan_hyperopt(request)   # validates everything first: ValueError (bad argument), FileNotFoundError (data)
    result = run_hyperopt(request, progress=on_progress, cancel=should_stop, plan=plan)

- ``on_progress(p: HyperoptProgress)``: ``p.fraction`` (0..1), ``p.message()``, ``p.fold``/``p.folds``,
  ``p.trials_done``/``p.trials_target``, ``p.best_score`` (in-sample), ``p.stage``.
- ``should_stop() -> bool`` is polled after every trial (about twice a second with jobs > 1); True stops the run
  after the running trials, and ``result.cancelled`` is set (only fully finished folds are reported).
- ``result: HyperoptResult``: ``best_params`` (strategy_params overrides from the last fold, i.e. trained on the
  most recent window: what to apply), ``oos_score`` (mean out-of-sample score: the number to judge by),
  ``is_score``, ``oos_total_return``, ``oos_worst_drawdown``, ``folds`` (``FoldResult``: ``fold`` windows,
  ``best_params``, ``is_score``/``is_metrics``, ``oos_score``/``oos_metrics``, ``trials``), ``table()`` (text),
  ``to_dict()`` (JSON-ready), ``write_json(root)``.

Errors: ``plan_hyperopt`` raises ValueError for a bad argument (unknown space, epochs ≤ 0, malformed storage URL,
range too short for one fold) and FileNotFoundError for missing candles; ``run_hyperopt`` raises ``StorageError``
(a ValueError) when the storage cannot be opened and ValueError when a study of that name exists with other
settings. Nothing is written before those checks pass; ``run_hyperopt`` itself writes no file (``write_json`` does).

The run is blocking and CPU-bound: call it from a worker process, not from an event loop. With ``jobs`` > 1 it
starts its own spawned worker processes, so that caller must not be a daemonic process (a multiprocessing.Pool
worker); a strategy passed as a class must be importable by its module path. Applying parameters is the caller's
business (RuntimeState); nothing here changes a running strategy.

Out-of-sample windows are separate backtests: indicators warm up inside the test window, so its first few bars
(the longest indicator period) cannot trade.

Take-profit targets: the reference strategy's ``tp_moves`` (``roi`` space) are price moves from entry. The
specification's 5/10/20 % "profit targets" are returns on margin; at leverage L a price move m is m·L on margin
(``margin_return_to_price_move``/``price_move_to_margin_return``; 10 % on margin at 25x = 0.4 % move). Results
carry ``tp_return_on_margin`` beside the moves.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "HyperoptRequest": "trader.optimize.study",
    "HyperoptProgress": "trader.optimize.study",
    "plan_hyperopt": "trader.optimize.study",
    "run_hyperopt": "trader.optimize.study",
    "check_storage_url": "trader.optimize.study",
    "StorageError": "trader.optimize.study",
    "HyperoptResult": "trader.optimize.results",
    "FoldResult": "trader.optimize.results",
    "margin_return_to_price_move": "trader.optimize.results",
    "price_move_to_margin_return": "trader.optimize.results",
    "make_loss": "trader.optimize.losses",
    "walk_forward": "trader.optimize.walkforward",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: strategies import trader.optimize.spaces, and the live engine should not load optuna for that.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
