"""binance-smart trading engine: everything the engine needs, with no knowledge of any front end."""

__version__ = "0.1.0"
