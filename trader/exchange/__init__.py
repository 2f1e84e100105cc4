"""The engine's one door to Binance USDⓈ-M (or the simulator): ccxt underneath, typed errors, weights, latency."""
