"""Simulator settings (the CLI maps its flags onto these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from trader.sim.book import BookConfig

# Default credentials: HMAC keys are 64 alphanumerics at Binance; any client may use these against a local sim.
DEFAULT_API_KEY = "simkey" + "0" * 58
DEFAULT_API_SECRET = "simsecret" + "0" * 55


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8900  # 0 picks a free port
    data_dir: Path | None = None  # None → the dataset bundled with the package
    pairs: list[str] = field(default_factory=lambda: ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"])
    start_ms: int | None = None  # None → where every pair has data
    clock_mode: str = "accelerated"  # real | accelerated | stepped
    speed: float = 60.0
    balance: Decimal = Decimal("10000")
    state_file: Path | None = None
    api_keys: dict[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_API_SECRET})
    default_leverage: int = 20  # Binance's default when leverage was never set
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    weight_limit: int = 2400  # REQUEST_WEIGHT per minute, as exchangeInfo announces
    ban_after_429s: int = 5  # further requests while limited before the 418 ban
    ban_seconds: float = 120.0
    margin_call_ratio: Decimal = Decimal("0.8")
    tick_interval_s: float = 0.1  # how often a running clock pushes the market forward
    book: BookConfig = field(default_factory=BookConfig)
    book_by_symbol: dict[str, BookConfig] = field(default_factory=dict)  # per-symbol shapes over ``book``
    api_restrictions: dict[str, bool] = field(default_factory=lambda: {
        "ipRestrict": True, "enableReading": True, "enableWithdrawals": False, "enableInternalTransfer": False,
        "enableMargin": False, "enableFutures": True, "permitsUniversalTransfer": False,
        "enableVanillaOptions": False, "enableFixApiTrade": False, "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": False, "enablePortfolioMarginTrading": False,
    })


def parse_start(text: str) -> int:
    """``2025-05-10`` or an ISO timestamp (UTC unless it says otherwise) → ms."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
