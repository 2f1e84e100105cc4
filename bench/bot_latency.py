"""The bot's own latency, end to end through the Telegram emulator with the real Application, the real
TradingService and the exchange simulator:

* /status: update injected → reply stored (target p95 ≤ 50 ms);
* /flatten with 10 open positions: Confirm pressed → the question edited into the report, i.e. every close
  acknowledged by the exchange and verified (target ≤ 1 s).

    .venv/bin/python bench/bot_latency.py [--rounds 200] [--flattens 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bot.emulator import TelegramEmulator
from bot.telegram.app import build_application
from trader.bootstrap import open_core
from trader.config.loader import load_settings
from trader.config.pairs import file_stem
from trader.events import EventBus
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.models import OrderRequest
from trader.exchange.order_ids import client_order_id
from trader.persistence.audit import Actor
from trader.service.service import TradingService
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorServer

BUNDLED = Path(__file__).resolve().parents[1] / "trader" / "resources" / "data" / "binance" / "futures"
# The bundled set has three pairs; seven more replay SOL's history under other names for a 10-position account.
EXTRA = ["XRP", "ADA", "DOGE", "LINK", "AVAX", "DOT", "LTC"]
PAIRS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", *(f"{b}/USDT:USDT" for b in EXTRA)]
SIZES = {"BTC/USDT:USDT": "0.05", "ETH/USDT:USDT": "1"}  # a few thousand USDT each
USER = 1001


def dataset(directory: Path) -> Path:
    for path in BUNDLED.iterdir():
        shutil.copy(path, directory / path.name)
    for base in EXTRA:
        for path in BUNDLED.glob("SOL_USDT_USDT-*"):
            shutil.copy(path, directory / path.name.replace("SOL_USDT_USDT", file_stem(f"{base}/USDT:USDT")))
    return directory


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, samples: list[float], target: str) -> str:
    return (f"{name:<44} n={len(samples):<4} p50={percentile(samples, 0.5):7.1f} ms  "
            f"p95={percentile(samples, 0.95):7.1f} ms  max={max(samples):7.1f} ms  "
            f"mean={statistics.fmean(samples):7.1f} ms  target {target}")


async def main(rounds: int, flattens: int, pace_s: float) -> None:
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        data = dataset(root / "data")
        sim_config = SimConfig(port=0, clock_mode="stepped", pairs=PAIRS, data_dir=data, balance=Decimal("10000000"))
        async with TelegramEmulator() as tg, SimulatorServer(sim_config) as sim:
            config = root / "config.json"
            config.write_text(json.dumps({
                "pair_whitelist": ["BTC", "ETH"], "leverage": 10, "user_data_dir": str(root / "ud"),
                "telegram": {"enabled": True, "api_base_url": f"http://127.0.0.1:{tg.port}",
                             "users": {str(USER): "admin"}}}), encoding="utf-8")
            settings = load_settings(config, environ={"TELEGRAM_TOKEN": tg.token}, dotenv_path=None)
            core = open_core(settings, console_logging=False, file_logging=False)
            client = ExchangeClient(ClientOptions(
                api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"), api_key=DEFAULT_API_KEY,
                secret=DEFAULT_API_SECRET, backoff=BackoffPolicy(attempts=4, base_s=0.01, cap_s=0.05),
                resolve_delay_s=0.01))
            await client.initialize(PAIRS, settings.leverage)
            service = TradingService(settings, core, client, EventBus())
            # As in production: AIORateLimiter keeps the bot under Telegram's 30 messages/s.
            app = build_application(settings, service, core, rate_limit=True)
            await app.initialize()
            await app.start()
            await app.updater.start_polling(timeout=10)
            try:
                await tg.wait_for_poll()
                status = []
                for _ in range(rounds):
                    began = time.perf_counter()
                    tg.send_text(USER, "/status")
                    await tg.wait_for_sent(USER)
                    status.append((time.perf_counter() - began) * 1000)
                    await asyncio.sleep(pace_s)
                flatten = []
                for run in range(flattens):
                    for index, pair in enumerate(PAIRS):
                        amount = SIZES.get(pair, "10")  # the SOL-priced pairs: about 1,500 USDT each
                        await client.create_order(OrderRequest(pair, "buy" if index % 2 else "sell", "market",
                                                               client_order_id(1000 * run + index, "entry"),
                                                               amount=Decimal(amount)))
                    assert len(await client.fetch_positions()) == 10
                    tg.send_text(USER, "/flatten")
                    question = await tg.wait_for_sent(USER)
                    data_y = question.buttons()[0].callback_data
                    began = time.perf_counter()
                    tg.press_button(USER, question, data_y)
                    edited = await tg.wait_for_edit(question, timeout=30)
                    flatten.append((time.perf_counter() - began) * 1000)
                    if not edited.text.startswith("🧯 Flatten done") or "Closed (10):" not in edited.text:
                        raise SystemExit(f"flatten did not close all 10:\n{edited.text}")
                    await service.resume(Actor("cli"))  # flatten pauses entries; the next run starts clean
            finally:
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
                await client.close()
                core.close()
    print(line("/status update → reply", status, "p95 ≤ 50 ms"))
    print(line("/flatten ×10 positions confirm → report", flatten, "≤ 1000 ms"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--flattens", type=int, default=5)
    parser.add_argument("--pace", type=float, default=0.05,
                        help="seconds between /status rounds: a fast human, below the 30 messages/s limit")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.flattens, args.pace))
