"""Market analysis (issue 13): indicators, multi-timeframe trend, volume/volatility state, sentiment, order flow,
chart patterns and a first regime classification, per pair on closed candles. ``analyzer.analyze`` is the entry
point; ``MarketSnapshot`` is what decision layers read."""
