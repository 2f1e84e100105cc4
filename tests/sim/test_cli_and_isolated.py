"""``bsmart sim`` as a process, and isolated margin through ccxt."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal as D
from pathlib import Path

from bot.cli import build_parser
from tests.sim.conftest import BTC, hold_price

REPO = Path(__file__).resolve().parents[2]


def test_sim_command_parses_its_flags():
    args = build_parser().parse_args(["sim", "--port", "0", "--pairs", "BTC,ETH/USDT", "--start", "2025-05-12",
                                      "--speed", "0", "--balance", "500", "--state", "s.json"])
    assert args.command == "sim" and args.port == 0 and args.speed == 0 and callable(args.func)
    assert args.pairs == "BTC,ETH/USDT" and args.state == Path("s.json")


def test_sim_command_serves_until_interrupted(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "sim", "--port", "0", "--speed", "0", "--pairs",
                             "BTC,ETH", "--start", "2025-05-12", "--balance", "500", "--state", str(state)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", line).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(url + "/fapi/v1/time", timeout=10) as r:
            assert json.loads(r.read())["serverTime"] == 1747008000000  # 2025-05-12T00:00Z, stepped clock
        with urllib.request.urlopen(url + "/fapi/v1/exchangeInfo", timeout=10) as r:
            assert [s["symbol"] for s in json.loads(r.read())["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    saved = json.loads(state.read_text())
    assert saved["account"]["wallet"] == "500"


def test_bad_flags_exit_with_2():
    out = subprocess.run([sys.executable, "-m", "bot.cli", "sim", "--pairs", "BTC/EUR"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not quoted in USDT" in out.stderr


def test_isolated_position_liquidates_at_its_own_price(sim, ex):
    ex.set_margin_mode("isolated", BTC)
    ex.set_leverage(25, BTC)
    hold_price(sim, 100_000)
    ex.create_order(BTC, "market", "buy", 0.01)
    (pos,) = ex.fetch_positions([BTC])
    entry = D("100001.0")
    iw = D("0.01") * entry / 25  # the isolated wallet holds the initial margin: 40.00004
    assert pos["marginMode"] == "isolated" and D(pos["info"]["isolatedWallet"]) == iw
    # Isolated long: LP = (P·EP − WB − cum) / (P·(1 − MMR))
    lp = (D("0.01") * entry - iw) / (D("0.01") * (1 - D("0.004")))
    assert D(pos["info"]["liquidationPrice"]) == lp.quantize(D("0.00000001"))
    wallet_before = D(ex.fetch_balance()["info"]["totalWalletBalance"])
    hold_price(sim, 96_000)
    assert ex.fetch_positions([BTC]) == []
    px = lp.quantize(D("0.1"))
    # The fee is capped at the maintenance margin and at what the isolated margin has left after the close (LP
    # rounded to the tick leaves a hair less than the maintenance margin).
    left = iw + D("0.01") * (px - entry)
    liq_fee = min(D("0.01") * px * D("0.0125"), D("0.01") * px * D("0.004"), left).quantize(D("0.00000001"))
    assert liq_fee == left.quantize(D("0.00000001"))
    # Only the isolated margin is lost: the rest of the wallet is untouched.
    after = D(ex.fetch_balance()["info"]["totalWalletBalance"])
    assert after == wallet_before + D("0.01") * (px - entry) - liq_fee
    assert after > D("9950")
