"""Random texts and button data from every kind of user: the bot never crashes and nothing changes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bot.conftest import ADMIN, STRANGER, TRADER, VIEWER, Harness, running_bot

USERS = [ADMIN, TRADER, VIEWER, STRANGER, 31337]
# Commands that act without a confirmation are left out: a fuzzer typing "/pause" as trader is a real pause.
COMMANDS = ["status", "positions", "balance", "pnl", "trades", "performance", "health", "help", "start",
            "flatten", "leverage", "whitelist", "forcelong", "forceshort", "forceexit", "users", "audit",
            "start_trading", "stop", "report"]
words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda w: w.strip() and not any(c.isspace() for c in w))
texts = st.one_of(
    st.text(min_size=1, max_size=300).filter(lambda s: s.strip()),
    st.builds(lambda c, args: " ".join([f"/{c}", *args]), st.sampled_from(COMMANDS), st.lists(words, max_size=4)),
)
callback_data = st.one_of(
    st.text(max_size=64).filter(lambda s: 0 < len(s.encode()) <= 64),
    st.builds(lambda n, c: f"cf:{n}:{c}", st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                                                  min_size=0, max_size=20), st.sampled_from("ynx")),
)


class ThreadedBot:
    """The harness on its own loop and thread, so that hypothesis (synchronous) can drive it."""

    def __init__(self, write_config: Any, tmp_path: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._context = running_bot(write_config, tmp_path, notifier_options={"retries": 0})
        self.bot: Harness = self.run(self._context.__aenter__())

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def settle(self) -> None:
        self.run(self.bot.tg.wait_for(lambda: self.bot.tg.pending_updates() == 0 or None, 10.0))

    def close(self) -> None:
        try:
            self.run(self._context.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def snapshot(bot: Harness, runner: ThreadedBot) -> tuple[Any, ...]:
    positions = runner.run(bot.service.client.fetch_positions())
    # The ledger check's wallet baseline is noted by the first /report (bookkeeping, not a change anyone made).
    state = {k: v for k, v in bot.core.runtime_state.all().items() if k != "wallet_baseline"}
    return (bot.service.leverage, tuple(bot.service.pairs), bot.service.paused, state,
            dict(bot.deps.roles.all()), len(positions), dict(bot.sim.exchange.leverage))


def test_random_texts_and_presses_change_nothing(write_config, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    runner = ThreadedBot(write_config, tmp_path)
    bot = runner.bot
    try:
        # Buttons to press at random: real questions from each known user, left unanswered.
        targets = [runner.run(bot.ask(user, "/leverage 20")) for user in (ADMIN, TRADER)]
        targets.append(runner.run(bot.ask(VIEWER, "/status")))
        before = snapshot(bot, runner)

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(USERS), st.one_of(texts.map(lambda t: ("text", t)),
                                                   callback_data.map(lambda d: ("press", d))),
               st.sampled_from(range(len(targets))))
        def one(user: int, action: tuple[str, str], target: int) -> None:
            kind, value = action
            if kind == "text":
                bot.tg.send_text(user, value[:4096])
            else:
                bot.tg.press_button(user, targets[target], value, strict=False)
            runner.settle()

        one()
        time.sleep(0.5)  # let the last handlers finish
        assert snapshot(bot, runner) == before
        last = max(m.message_id for m in bot.tg.messages(ADMIN))
        bot.tg.send_text(ADMIN, "/status")
        answer = runner.run(bot.tg.wait_for_sent(ADMIN, lambda m: m.message_id > last))
        assert answer.text.startswith("📊 Status")  # still alive and answering
        assert not any("Something went wrong" in (m.text or "") for m in bot.tg.sent())
        failures = [r for r in caplog.records if r.name.startswith("bot.telegram") and r.levelno >= logging.ERROR]
        assert failures == []
        assert not [r for r in caplog.records if "telegram update failed" in r.getMessage()]
    finally:
        runner.close()
