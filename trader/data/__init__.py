"""Market data on disk: Parquet candles, mark prices and funding rates in freqtrade's layout."""
