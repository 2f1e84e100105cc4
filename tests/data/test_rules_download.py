"""``bsmart download`` saves the day's exchange rules beside the candles; the simulator serves both sources."""

from __future__ import annotations

import json
from pathlib import Path

from bot.cli import main
from trader.model.rules import instrument
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorThread

DAY = 86_400_000


def _download(sim: SimulatorThread, tmp_path: Path, write_config, exchange: dict) -> int:  # noqa: ANN001
    config = write_config({"exchange": {"api_url": sim.rest_url, **exchange}, "user_data_dir": str(tmp_path / "ud")})
    return main(["download", "--config", str(config), "--pairs", "BTC,SOL", "--timeframes", "1h",
                 "--timerange", "20250505-20250506"])


def test_download_saves_filters_and_with_keys_brackets(tmp_path: Path, write_config, capsys) -> None:
    store = tmp_path / "ud/data/binance/futures"
    with SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=["BTC/USDT:USDT", "SOL/USDT:USDT"])) as sim:
        sim.step(DAY)
        assert _download(sim, tmp_path, write_config, {}) == 0
        out = capsys.readouterr().out
        (info,) = store.glob("exchange_info-*.json")
        assert not list(store.glob("leverage_bracket-*.json"))
        assert "leverage brackets not saved: they need API keys" in out
        assert [s["symbol"] for s in json.loads(info.read_text())["symbols"]] == ["BTCUSDT", "SOLUSDT"]
        assert _download(sim, tmp_path, write_config, {"key": DEFAULT_API_KEY, "secret": DEFAULT_API_SECRET}) == 0
        (brackets,) = store.glob("leverage_bracket-*.json")
        served = {b["symbol"]: b["brackets"] for b in json.loads(brackets.read_text())["brackets"]}
    assert sorted(served) == ["BTCUSDT", "SOLUSDT"]
    # The simulator's rules are the bundled snapshot's: what it served reads back as the same spec.
    for pair in ("BTC/USDT:USDT", "SOL/USDT:USDT"):
        own, bundled = instrument(pair, store), instrument(pair)
        assert (own.step_size, own.tick_size, own.min_notional) == (bundled.step_size, bundled.tick_size,
                                                                     bundled.min_notional)
        assert [(b.floor, b.cap, b.mmr, b.cum, b.max_leverage) for b in own.brackets] == \
               [(b.floor, b.cap, b.mmr, b.cum, b.max_leverage) for b in bundled.brackets]
        assert own.source.startswith("exchange_info-2025")
