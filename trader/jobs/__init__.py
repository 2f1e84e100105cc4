"""Heavy jobs (backtests) in worker processes, off the engine's and the bot's event loops.

``runner.BacktestJobs`` starts, follows and cancels them and stores their runs; ``worker`` is what a spawned child
imports (kept light on purpose, so nothing is imported here); ``data`` checks the candle store before a job is
queued; ``store`` keeps ``BacktestRun`` rows and reads finished runs back for reports.
"""
