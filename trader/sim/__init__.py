"""A local Binance USDⓈ-M futures exchange: replayed real candles, a synthesized book, Binance's accounting,
REST + websocket protocol close enough for ccxt/ccxt.pro to trade against it with only their URLs changed.

Entry points: ``SimulatorServer`` (asyncio), ``SimulatorThread`` (own thread), ``SimConfig``, and the ccxt helpers
in ``trader.sim.client``. CLI: ``bsmart sim``.
"""

from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer, SimulatorThread

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "SimConfig", "SimulatorServer", "SimulatorThread"]
