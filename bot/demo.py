"""`bsmart demo`: the whole product offline, with no configuration at all.

The simulator replays the shipped BTC/ETH/SOL data fast, the engine trades it in dry-run, the real bot answers
through the Telegram Bot API emulator, and this terminal is the phone: type a command, or the number of a button
to press it. The terminal shows the chat only; the logs go to ``<dir>/logs/`` (trading.log, errors.log).
Everything lives in ``user_data/demo`` so a demo never touches a real deployment's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.emulator import TelegramEmulator
from bot.emulator.transcript import NumberedButton, render_message
from bot.main_job import Runtime, run_main_job
from trader.config.loader import validate
from trader.config.schema import Settings
from trader.data.store import bundled_data_dir
from trader.data.timeframes import timeframe_ms
from trader.logging_setup import setup_logging
from trader.security.redaction import Redactor

DEMO_USER = 1001
DAY_MS = 86_400_000
DEMO_SPEED = 60.0  # one replayed minute per second: candles close every second
ANSWER_WAIT_S = 60.0  # how long a typed line waits for the bot to finish answering before the next one is read
IDLE_POLLS = 3  # the bot counts as done after this many idle looks in a row (an update is briefly in neither count)
POLL_S = 0.1


def demo_start_ms(settings: Settings) -> int | None:
    """Where the replay starts: with the longest warm-up of any strategy /strategy offers behind it (the master on
    1m needs about 8 days), so whichever the user picks decides from its first candles; the shipped month leaves
    about three weeks to watch. None (the simulator's default) when the data is too short for that."""
    import pyarrow.parquet as pq

    from trader.strategy.preflight import live_requirements
    from trader.strategy.reference import STRATEGIES

    data_dir = settings.simulator.data_dir or bundled_data_dir()
    firsts, lasts = [], []
    for path in Path(data_dir).glob("*-1m-futures.parquet"):
        ts = pq.read_table(path, columns=[pq.read_schema(path).names[0]]).column(0)
        firsts.append(int(ts[0].as_py()))
        lasts.append(int(ts[-1].as_py()))
    if not firsts:
        return None
    tf_ms = timeframe_ms(settings.timeframes[0])
    warmup = max(live_requirements(name, None, settings.timeframes[0])["history_bars"] for name in STRATEGIES)
    start = (max(firsts) + (warmup + 60) * tf_ms + DAY_MS) // 60_000 * 60_000
    return start if start < min(lasts) - 7 * DAY_MS else None


def demo_settings(user_data: Path, api_base_url: str, token: str, language: str = "en") -> Settings:
    return validate({
        "pair_whitelist": ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"],
        "timeframes": ["1m"],
        "telegram": {"enabled": True, "token": token, "api_base_url": api_base_url,
                     "users": {str(DEMO_USER): "admin"}, "language": language},
        "simulator": {"speed": DEMO_SPEED},
        "metrics": {"enabled": False},
        "user_data_dir": str(user_data),
    })


@dataclass
class TerminalChat:
    """Prints what the bot sends (new messages and edits), numbers buttons, and turns typed lines into updates."""

    tg: TelegramEmulator
    out: TextIO = sys.stdout
    buttons: dict[int, NumberedButton] = field(default_factory=dict)
    _seen: dict[int, tuple[str | None, object]] = field(default_factory=dict)
    _next: int = 1

    def show_news(self) -> None:
        """Print what is new since the last look: new messages, and edits as the message's new text."""
        for message in self.tg.sent(DEMO_USER):
            version = (message.text if message.text is not None else message.caption, message.edit_date)
            if self._seen.get(message.message_id) == version:
                continue
            self._seen[message.message_id] = version
            text, numbered = render_message(message, self._next)
            for button in numbered:
                self.buttons[button.number] = button
            self._next += len(numbered)
            print(text, file=self.out, flush=True)

    def handle(self, line: str) -> bool | None:
        """Act on one typed line: None means the user wants to leave, True that the bot was sent an update."""
        text = line.strip()
        if text in ("/quit", "/exit", "quit", "exit"):
            return None
        if not text:
            return False
        if text.isdigit():
            button = self.buttons.get(int(text))
            if button is None:
                print(f"(no button {text})", file=self.out, flush=True)
                return False
            try:
                self.tg.press_button(DEMO_USER, button.message, button.button.callback_data)
            except LookupError:  # the message was edited since (answered, expired): its buttons are gone
                print(f"(button {text} is no longer there)", file=self.out, flush=True)
                return False
            return True
        self.tg.send_text(DEMO_USER, text)
        return True


def bot_busy(tg: TelegramEmulator, app: Any) -> bool:
    """Whether an update is still waiting for the bot or being handled by it (a confirmed /flatten can take seconds)."""
    if tg.pending_updates():
        return True
    if app is None:
        return False
    return app.update_queue.qsize() > 0 or app.update_processor.current_concurrent_updates > 0


async def wait_for_answer(tg: TelegramEmulator, app: Any, stop: asyncio.Event, timeout_s: float = ANSWER_WAIT_S) -> bool:
    """Wait until the bot has finished with everything sent to it; False when it is still busy after `timeout_s`.

    Reading the next line only then keeps a piped script honest: a /quit right after a button press must not cut
    the press's answer off (the user typing by hand never noticed; a script did)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    idle = 0
    while idle < IDLE_POLLS and not stop.is_set():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
        idle = 0 if bot_busy(tg, app) else idle + 1
    return True


def _start_reader(source: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read lines on a daemon thread: a blocked read must never keep the process from exiting on Ctrl-C."""

    def run() -> None:
        for line in source:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=run, name="demo-stdin", daemon=True).start()


async def run_demo(
    user_data: Path,
    *,
    language: str = "en",
    source: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
) -> int:
    stop = stop or asyncio.Event()
    tg = TelegramEmulator()
    tg.start_in_thread()
    try:
        tg.user(DEMO_USER, first_name="Demo", language_code="zh-hans" if language == "zh_CN" else "en")
        tg.open_private_chat(DEMO_USER)
        settings = demo_settings(user_data, tg.base_url.removesuffix("/bot"), tg.token, language)
        # The terminal is the phone: log records go to files only (the main job keeps it so once it is up).
        redactor = Redactor()
        redactor.add(tg.token)
        setup_logging(settings.log_level, settings.logs_dir, redactor, console=False)
        chat = TerminalChat(tg, out)
        ready = asyncio.Event()
        built: list[Runtime] = []

        def on_ready(runtime: Runtime, info: dict[str, object]) -> None:
            built.append(runtime)
            print(f"demo: simulator {info.get('simulator')}, engine "
                  f"{'running' if runtime.control.running else 'stopped'}; logs in {settings.logs_dir}. Type "
                  "/help, a command, or a button number; /quit leaves.", file=out, flush=True)
            ready.set()

        start_ms = demo_start_ms(settings)
        job = asyncio.create_task(run_main_job(settings, stop, heartbeat_s=5.0, on_ready=on_ready,
                                               console_logging=False,
                                               sim_overrides={"start_ms": start_ms} if start_ms else None))
        done, _ = await asyncio.wait({job, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            print(f"demo: the main job did not start; see {settings.logs_dir / 'errors.log'}", file=out, flush=True)
            return job.result()
        tg.send_text(DEMO_USER, "/start")
        printer = asyncio.create_task(_print_loop(chat, stop))
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        _start_reader(source, asyncio.get_running_loop(), lines)
        try:
            while not stop.is_set():
                getter = asyncio.create_task(lines.get())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not getter.done():
                    getter.cancel()
                    break
                line = getter.result()
                sent = None if line is None else chat.handle(line)
                if sent is None:
                    break
                if sent and not await wait_for_answer(tg, built[0].app, stop):
                    print(f"(the bot is still working after {ANSWER_WAIT_S:.0f} s; its answer shows when it comes)",
                          file=out, flush=True)
                chat.show_news()
        finally:
            stop.set()
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
        code = await job
        chat.show_news()  # what the bot said while it stopped (a shutdown notice) is part of the chat too
        return code
    finally:
        tg.stop_thread()


async def _print_loop(chat: TerminalChat, stop: asyncio.Event) -> None:
    while not stop.is_set():
        chat.show_news()
        await asyncio.sleep(0.2)
