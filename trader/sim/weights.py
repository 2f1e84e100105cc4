"""Request-weight and order-rate accounting: X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-1M/10S, 429 then 418.

Windows follow the wall clock, not the replay clock: rate limits protect the server, whose time is real.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from trader.sim.errors import BinanceError

ORDER_LIMIT_10S = 300
ORDER_LIMIT_1M = 1200


@dataclass
class _IpState:
    minute: int = -1
    used: int = 0
    rejections: int = 0
    banned_until: float = 0.0


@dataclass
class WeightMeter:
    limit: int = 2400
    ban_after_429s: int = 5
    ban_seconds: float = 120.0
    order_limit_10s: int = ORDER_LIMIT_10S
    order_limit_1m: int = ORDER_LIMIT_1M
    clock: object = field(default=time.time, repr=False)
    _ips: dict[str, _IpState] = field(default_factory=dict)
    _orders_10s: deque[float] = field(default_factory=deque)
    _orders_1m: deque[float] = field(default_factory=deque)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator]

    def used(self, ip: str) -> int:
        st = self._ips.get(ip)
        if st is None or st.minute != int(self._now() // 60):
            return 0
        return st.used

    def charge(self, ip: str, weight: int) -> int:
        """Add ``weight`` for ``ip``; returns the minute's total or raises 429 (−1003), then 418 once the client
        keeps going after ``ban_after_429s`` refusals."""
        now = self._now()
        st = self._ips.setdefault(ip, _IpState())
        if st.banned_until > now:
            until = datetime.fromtimestamp(st.banned_until, timezone.utc)
            raise BinanceError(-1003, f"Way too many requests; IP(127.0.0.1) banned until {int(until.timestamp() * 1000)}. "
                                      "Please use the websocket for live updates to avoid bans.", 418)
        minute = int(now // 60)
        if st.minute != minute:
            if st.used <= self.limit:
                st.rejections = 0
            st.minute, st.used = minute, 0
        st.used += weight
        if st.used > self.limit:
            st.rejections += 1
            if st.rejections > self.ban_after_429s:
                st.banned_until = now + self.ban_seconds
                raise BinanceError(-1003, f"Way too many requests; IP(127.0.0.1) banned until "
                                          f"{int(st.banned_until * 1000)}. Please use the websocket for live updates "
                                          "to avoid bans.", 418)
            raise BinanceError(-1003, f"Too many requests; current limit is {self.limit} requests per minute. Please "
                                      "use the websocket for live updates to avoid polling the API.", 429)
        return st.used

    def retry_after(self) -> int:
        return 60 - int(self._now()) % 60

    def count_order(self) -> tuple[int, int]:
        """Register one order request; returns (10 s count, 1 min count) or raises −1015."""
        now = self._now()
        for q, span in ((self._orders_10s, 10), (self._orders_1m, 60)):
            while q and q[0] <= now - span:
                q.popleft()
        if len(self._orders_10s) >= self.order_limit_10s:
            raise BinanceError(-1015, f"Too many new orders; current limit is {self.order_limit_10s} orders per "
                                      "10 SECOND.", 429)
        if len(self._orders_1m) >= self.order_limit_1m:
            raise BinanceError(-1015, f"Too many new orders; current limit is {self.order_limit_1m} orders per "
                                      "MINUTE.", 429)
        self._orders_10s.append(now)
        self._orders_1m.append(now)
        return len(self._orders_10s), len(self._orders_1m)

    def set_limits(self, values: dict[str, object]) -> dict[str, int]:
        for k in ("limit", "ban_after_429s", "order_limit_10s", "order_limit_1m"):
            if k in values:
                setattr(self, k, int(values[k]))  # type: ignore[call-overload]
        unknown = set(values) - {"limit", "ban_after_429s", "order_limit_10s", "order_limit_1m"}
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        return {"limit": self.limit, "ban_after_429s": self.ban_after_429s,
                "order_limit_10s": self.order_limit_10s, "order_limit_1m": self.order_limit_1m}

    def reset(self) -> None:
        self._ips.clear()
        self._orders_10s.clear()
        self._orders_1m.clear()
