"""LivePredictions without an engine: bars handed over as the engine's observer would; predictions only from bars
closed by the decision bar; a request made before its bar arrived waits for it; a pair nobody feeds, or too little
history, gives no prediction at once, with the reason."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.live.conftest import wait_until
from tests.ml.conftest import BTC
from trader.data.store import bundled_data_dir, load_candles
from trader.live.feed import Bar
from trader.ml.live import GRID_MS, LivePredictions
from trader.ml.predictor import Predictor

T0 = 1747008000000  # 2025-05-12 00:00 UTC
MIN = 60_000


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    df = load_candles(bundled_data_dir(), BTC, "1m", start_ms=T0 - 3 * 86_400_000, end_ms=T0 + 3_600_000)
    return [Bar(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume) for r in df.itertuples(index=False)]


def _live(xgb_models, **kw) -> LivePredictions:
    return LivePredictions(Predictor.load_active(xgb_models), None, **kw).start()


def test_predictions_read_only_bars_closed_by_the_decision_bar(xgb_models, bars) -> None:
    cut = next(i for i, b in enumerate(bars) if b.ts_ms + MIN == T0)
    a, b = _live(xgb_models), _live(xgb_models)
    try:
        a.observe(BTC, bars[:cut + 1], False, MIN)  # history up to T0
        b.observe(BTC, bars[:cut + 1], False, MIN)
        b.observe(BTC, bars[cut + 1:cut + 40], True, MIN)  # later bars arrive before b is asked about T0
        va, vb = a.predict(BTC, T0, {}), b.predict(BTC, T0, {})
        ra = a._results[BTC][T0]
        rb = b._results[BTC][T0]
        assert ra.reason == "" and va is not None and vb is not None
        assert ra.score == pytest.approx(rb.score) and va == vb
        np.testing.assert_allclose(ra.prediction.probabilities["reversal"], rb.prediction.probabilities["reversal"])
        wait_until(lambda: b.latest(BTC).close_ms == T0 + 35 * MIN)  # the newest grid bar, predicted on its own
        assert 0 < max(a.compute_ms) < 2000
    finally:
        a.stop()
        b.stop()


def test_a_request_before_its_bar_waits_for_it(xgb_models, bars) -> None:
    cut = next(i for i, b in enumerate(bars) if b.ts_ms + MIN == T0)
    live = _live(xgb_models, wait_s=10.0)
    try:
        live.observe(BTC, bars[:cut - 4], False, MIN)  # up to T0 − 5 min
        for b in bars[cut - 4:cut]:
            live.observe(BTC, [b], True, MIN)
        threading.Timer(0.3, lambda: live.observe(BTC, [bars[cut]], True, MIN)).start()  # T0's last minute, late
        t = time.perf_counter()
        got = live.predict(BTC, T0, {})
        assert got is not None and 0.25 < time.perf_counter() - t < 5
        assert live.latest(BTC).close_ms == T0
    finally:
        live.stop()


def test_no_feed_or_too_little_history_answers_at_once(xgb_models, bars) -> None:
    live = _live(xgb_models, wait_s=10.0)
    try:
        t = time.perf_counter()
        assert live.predict("ETH/USDT:USDT", T0, {}) is None
        assert "has not fed" in live.last_reason["ETH/USDT:USDT"]
        assert live.predict(BTC, T0, {}) is None and time.perf_counter() - t < 1
        short = [b for b in bars if T0 - 6 * 3_600_000 <= b.ts_ms < T0]
        live.observe(BTC, short, False, MIN)
        assert live.predict(BTC, T0, {}) is None
        assert "too little history" in live.last_reason[BTC]
        assert live.view(BTC)["score"] is None and "warming up" in live.view(BTC)["reason"]
        assert T0 % GRID_MS == 0
    finally:
        live.stop()
