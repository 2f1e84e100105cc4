"""Futures backtesting on Backtrader.

- ``slippage``: the taker slippage assumption (exchange rules and money rules are ``trader.model``'s).
- ``broker``: ``FuturesBroker``, the USDT-M cross-margin account inside Backtrader (fills, funding, liquidation).
- ``feeds``: a feed filled straight from numpy arrays, indicators as extra lines.
- ``data_prep``: candles, mark ratio and funding per segment; gaps split runs and are reported.
- ``runner``: ``run_backtest(BacktestRequest, progress) -> BacktestResult`` for every caller.
- ``export`` / ``persist``: result files and database rows.
- ``stress``: a scripted flash crash replayed through the same engine.
"""
