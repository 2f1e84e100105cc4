"""Reports: text summaries and matplotlib charts built from engine results.

Imports point one way, bot → reports → trader. Inputs are the engine's plain result objects (``BacktestResult``,
``MonteCarloResult``, the service's ``PeriodPnL``/``PairPerformance``/``PositionView``/``BalanceView``/
``TradeView``, candle frames from ``trader.data.store``); outputs are PNG bytes and formatted text rows.

Charts (each ``*_chart`` returns PNG bytes of a fixed size, 1080 px wide, in a "light" or "dark" theme, with
time axes in an IANA zone given as ``tz``):
    reports.charts.equity      equity_chart                  equity curve, drawdown beneath
    reports.charts.candles     candle_chart                  candles with entries, exits, stops and levels
    reports.charts.pnl         daily_pnl_chart               daily P&L bars and running total
    reports.charts.pairs       pair_performance_chart        net P&L per pair
    reports.charts.montecarlo  monte_carlo_fan, _chart       percentile fan of resampled trade sequences
    reports.charts.backtest    backtest_report_chart, backtest_pngs   metrics table + equity; all charts of a run
    reports.daily              daily_report_chart            the bot's daily report image
Text (formatted values keyed for the bot's i18n catalog; English renderings for the CLI):
    reports.text.format, .table, .backtest, .positions, .daily
Helpers: reports.theme (palettes, sizes), reports.render (Figure → PNG, no pyplot), reports.timeaxis,
reports.series (drawdown, decimation, daily and per-pair rows from backtest trades).
"""
