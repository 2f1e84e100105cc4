"""The candle gate's shortcut (``OrderDesk.gate_open``): a candle skips ``settle`` only when ``settle`` would find
nothing to wait for on its pair: no operation in flight on it, no resting priced order of it that the candle's
range may have reached, no balance refresh under way."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from trader.live.desk import OrderDesk
from trader.live.ledger import Ledger
from trader.live.orders import OrderSpec, Tracked

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _desk() -> OrderDesk:
    return OrderDesk(None, [BTC, ETH], leverage=25, ledger=Ledger())  # type: ignore[arg-type]


def test_the_gate_is_open_only_when_settle_has_nothing_to_wait_for() -> None:
    async def main() -> None:
        desk = _desk()
        assert desk.gate_open(BTC) and desk.gate_open(ETH)

        release = asyncio.Event()
        desk._spawn(BTC, release.wait())  # an operation on BTC in flight
        await asyncio.sleep(0)
        assert not desk.gate_open(BTC) and desk.gate_open(ETH)
        release.set()
        await desk.drain()
        assert desk.gate_open(BTC)

        stop = Tracked(OrderSpec(1, BTC, "sell", "stop", Decimal("0.01"), Decimal("90"), True, False, "stop"),
                       cid="bsm-1-stop-1", status="open")
        desk._by_cid[stop.cid] = stop  # a resting stop: a candle reaching 90 must see whether it filled
        assert not desk.gate_open(BTC) and desk.gate_open(ETH)
        stop.status = "closed"
        assert desk.gate_open(BTC)

        refreshed = asyncio.Event()
        desk._balance_task = asyncio.get_running_loop().create_task(refreshed.wait())  # the wallet after a fill
        await asyncio.sleep(0)
        assert not desk.gate_open(BTC) and not desk.gate_open(ETH)
        refreshed.set()
        await desk._balance_task
        assert desk.gate_open(BTC) and desk.gate_open(ETH)

    asyncio.run(main())
