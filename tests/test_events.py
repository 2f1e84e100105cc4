from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

from trader.events import EVENT_KINDS, EventBus, OrderFilled, RiskAction, StopMoved


def test_events_carry_a_stable_kind_and_utc_time() -> None:
    event = StopMoved(pair="BTC/USDT:USDT", trade_id=1, old_price=Decimal("90"), new_price=Decimal("95"))
    assert event.kind == "stop_moved" and event.kind in EVENT_KINDS
    assert event.time.utcoffset().total_seconds() == 0


def test_a_failing_subscriber_does_not_stop_the_others(caplog) -> None:
    bus = EventBus()
    seen = []

    def broken(event):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(seen.append)
    bus.publish(RiskAction(action="size_halved", reason="3 losses"))
    assert len(seen) == 1 and "event subscriber failed" in caplog.text
    unsubscribe()
    bus.publish(RiskAction(action="size_halved", reason="again"))
    assert len(seen) == 1


async def test_events_from_another_thread_arrive_on_the_subscribers_loop() -> None:
    bus = EventBus()
    loop = asyncio.get_running_loop()
    received: list[tuple[OrderFilled, int]] = []
    done = asyncio.Event()

    async def on_event(event) -> None:
        received.append((event, threading.get_ident()))
        done.set()

    bus.subscribe_on_loop(loop, on_event)
    fill = OrderFilled(pair="ETH/USDT:USDT", side="long", purpose="entry", client_order_id="bsm-1-entry-0",
                       amount=Decimal("0.1"), price=Decimal("2500"))
    publisher = threading.Thread(target=bus.publish, args=(fill,))
    publisher.start()
    publisher.join()
    await asyncio.wait_for(done.wait(), 2)
    assert received == [(fill, threading.get_ident())]
