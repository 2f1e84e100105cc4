"""Every chart rendered from real data in both themes: decodes, exact size, not blank, series visibly drawn."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from report_helpers import assert_chart, colour_share, decode, hex_rgb

from reports.charts.backtest import backtest_pngs, backtest_report_chart
from reports.charts.candles import (
    Level,
    TradeMark,
    candle_chart,
    fit_candles,
    levels_from_position,
    marks_from_backtest,
    marks_from_views,
)
from reports.charts.equity import equity_chart
from reports.charts.montecarlo import monte_carlo_chart, monte_carlo_fan
from reports.charts.pairs import pair_performance_chart
from reports.charts.pnl import daily_pnl_chart
from reports.daily import daily_report_chart
from reports.series import daily_pnl, pair_performance
from reports.theme import PORTRAIT, SQUARE, TALL, get_theme
from trader.data.store import resample
from trader.performance.montecarlo import monte_carlo, trade_returns
from trader.service.pnl import TradeView

THEMES = ("light", "dark")


@pytest.mark.parametrize("theme", THEMES)
def test_equity_with_drawdown(backtest, theme) -> None:
    png = equity_chart(backtest.equity_ms, backtest.equity, initial=backtest.initial_wallet, theme=theme,
                       tz="Asia/Shanghai")
    th = get_theme(theme)
    image = assert_chart(png, PORTRAIT, th.background)
    assert colour_share(image, th.accent) > 0.005  # the equity line
    assert colour_share(image, th.down, tol=60) > 0.01  # the drawdown area (this week lost up to ~30 %)


@pytest.mark.parametrize("theme", THEMES)
def test_candles_with_entries_exits_and_stops(eth_window, positions, theme) -> None:
    frame, trades = eth_window
    marks = marks_from_backtest(trades, "ETH/USDT:USDT")
    eth = next(p for p in positions if p.pair == "ETH/USDT:USDT")
    png = candle_chart(frame, "ETH/USDT:USDT", trades=marks, levels=levels_from_position(eth), theme=theme,
                       tz="Asia/Shanghai")
    th = get_theme(theme)
    image = assert_chart(png, PORTRAIT, th.background)
    assert colour_share(image, th.up) > 0.002 and colour_share(image, th.down) > 0.002  # both candle kinds
    shown = [m for m in marks if frame["timestamp"].iloc[0] <= m.close_ms < frame["timestamp"].iloc[-1]]
    assert any(m.stopped for m in shown), "the window was chosen to include a stopped trade"
    assert colour_share(image, th.stop, tol=30) > 0.001  # stop exits and the position's stop line


def test_candles_without_marks_differ_from_candles_with_marks(eth_window) -> None:
    frame, trades = eth_window
    bare = candle_chart(frame, "ETH/USDT:USDT")
    marked = candle_chart(frame, "ETH/USDT:USDT", trades=marks_from_backtest(trades, "ETH/USDT:USDT"))
    assert bare != marked


def test_candles_from_live_trade_views_draw_their_stop(eth_window) -> None:
    frame, _ = eth_window
    t0 = int(frame["timestamp"].iloc[60])
    t1 = int(frame["timestamp"].iloc[200])
    entry = Decimal(repr(float(frame["close"].iloc[60])))
    view = TradeView(1, "ETH/USDT:USDT", "long", "closed", Decimal("0.5"), entry,
                     Decimal(repr(float(frame["close"].iloc[200]))),
                     dt.datetime.fromtimestamp(t0 / 1000, dt.timezone.utc),
                     dt.datetime.fromtimestamp(t1 / 1000, dt.timezone.utc), Decimal("1.2"), Decimal("0.3"),
                     Decimal(0), "tp1", entry * Decimal("0.995"), 25)
    marks = marks_from_views([view], "ETH/USDT:USDT")
    assert marks == [TradeMark("long", t0, entry, t1, view.close_rate, view.stop_price, "tp1")]
    png = candle_chart(frame, "ETH/USDT:USDT", trades=marks, theme="light")
    image = assert_chart(png, PORTRAIT, get_theme("light").background)
    assert colour_share(image, get_theme("light").stop, tol=30) > 0.0005  # the dashed stop over the trade


def test_too_many_candles_are_merged_not_squeezed(eth_window) -> None:
    frame, _ = eth_window
    fitted, tf = fit_candles(frame, 90)
    assert tf == "5m" and len(fitted) == 72
    assert fitted.equals(resample(frame, "1m", "5m"))
    same, tf1 = fit_candles(frame.head(60), 90)
    assert tf1 == "1m" and len(same) == 60


@pytest.mark.parametrize("theme", THEMES)
def test_daily_pnl_bars(backtest, theme) -> None:
    rows = daily_pnl(backtest.trades, "Asia/Shanghai", backtest.start_ms, backtest.end_ms)
    png = daily_pnl_chart(rows, theme=theme)
    th = get_theme(theme)
    image = assert_chart(png, SQUARE, th.background)
    assert colour_share(image, th.up) > 0.01 and colour_share(image, th.down, tol=60) > 0.01


@pytest.mark.parametrize("theme", THEMES)
def test_pair_performance(backtest, theme) -> None:
    rows = pair_performance(backtest.trades)
    png = pair_performance_chart(rows, theme=theme)
    th = get_theme(theme)
    image = assert_chart(png, SQUARE, th.background)
    # Each sign that occurs is drawn in its colour (which pairs win that week depends on the risk rules in force).
    assert any(r.net_pnl > 0 for r in rows) or any(r.net_pnl < 0 for r in rows)
    if any(r.net_pnl > 0 for r in rows):
        assert colour_share(image, th.up) > 0.01
    if any(r.net_pnl < 0 for r in rows):
        assert colour_share(image, th.down, tol=60) > 0.01


@pytest.mark.parametrize("theme", THEMES)
def test_monte_carlo_fan(backtest, theme) -> None:
    returns = trade_returns(backtest.trades)
    fan = monte_carlo_fan(returns, runs=500, seed=7)
    summary = monte_carlo(returns, runs=500, seed=7)
    png = monte_carlo_chart(fan, summary=summary, theme=theme)
    th = get_theme(theme)
    image = assert_chart(png, SQUARE, th.background)
    # The band colour is drawn translucent, so look for anything bluish rather than the exact hex.
    px = np.asarray(image, dtype=float)
    bluish = (px[..., 2] - px[..., 0] > 40).mean()
    assert bluish > 0.1


@pytest.mark.parametrize("theme", THEMES)
def test_backtest_report_image(backtest, theme) -> None:
    summary = monte_carlo(trade_returns(backtest.trades), runs=500, seed=1)
    png = backtest_report_chart(backtest, montecarlo=summary, theme=theme, tz="Asia/Shanghai")
    th = get_theme(theme)
    image = assert_chart(png, TALL, th.background)
    assert colour_share(image, th.accent) > 0.003


@pytest.mark.parametrize("theme", THEMES)
def test_daily_report_chart(backtest, positions, balance, theme) -> None:
    days = daily_pnl(backtest.trades, "Europe/Berlin", backtest.start_ms, backtest.end_ms)[:7]
    png = daily_report_chart(days, positions, balance=balance, theme=theme, tz="Europe/Berlin",
                             now=dt.datetime(2025, 5, 17, 6, tzinfo=dt.timezone.utc))
    th = get_theme(theme)
    image = assert_chart(png, PORTRAIT, th.background)
    assert colour_share(image, th.up) > 0.005


@pytest.mark.parametrize("theme", THEMES)
def test_empty_inputs_still_render(theme) -> None:
    """No trades yet, no positions: the daily report still goes out with a readable placeholder."""
    th = get_theme(theme)
    for png, size in (
        (daily_report_chart([], [], theme=theme), PORTRAIT),
        (equity_chart([], [], theme=theme), PORTRAIT),
        (daily_pnl_chart([], theme=theme), SQUARE),
        (pair_performance_chart([], theme=theme), SQUARE),
    ):
        image = decode(png)
        assert image.size == size
        px = np.asarray(image, dtype=float)
        plain = np.zeros(px.shape[:2], dtype=bool)
        for colour in {th.background, th.panel}:
            plain |= np.linalg.norm(px - hex_rgb(colour), axis=2) < 3
        assert 0.8 < plain.mean() < 0.999  # mostly empty, but the placeholder text is there


def test_labels_override_and_unknown_keys_are_rejected(backtest) -> None:
    a = equity_chart(backtest.equity_ms, backtest.equity, labels={"title": "Kapital"})
    b = equity_chart(backtest.equity_ms, backtest.equity)
    assert a != b
    with pytest.raises(KeyError):
        equity_chart(backtest.equity_ms, backtest.equity, labels={"titel": "typo"})


def test_levels_cover_a_stop_far_from_the_candles(eth_window) -> None:
    """A stop 20 % away is still inside the y range (the chart widens rather than hiding it)."""
    from reports.charts.candles import candle_figure

    frame, _ = eth_window
    far = float(frame["low"].min()) * 0.8
    fig = candle_figure(frame, "ETH/USDT:USDT", levels=[Level(far, "stop")])
    lo, hi = fig.axes[0].get_ylim()
    assert lo < far < hi


def test_backtest_pngs_bundle(backtest) -> None:
    summary = monte_carlo(trade_returns(backtest.trades), runs=300, seed=2)
    pngs = backtest_pngs(backtest, montecarlo=summary, theme="dark", tz="Asia/Shanghai", mc_runs=300)
    sizes = {"report": TALL, "daily_pnl": SQUARE, "pairs": SQUARE, "montecarlo": SQUARE}
    assert set(pngs) == set(sizes)
    for key, png in pngs.items():
        assert_chart(png, sizes[key], get_theme("dark").background)


def test_degenerate_series_render_without_warnings(backtest) -> None:
    """One point, a flat line: matplotlib warns about singular limits unless the chart widens them itself."""
    import warnings

    ts, eq = backtest.equity_ms, backtest.equity
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for png in (equity_chart(ts[:1], eq[:1]), equity_chart(ts[:50], [1000.0] * 50)):
            assert decode(png).size == PORTRAIT


def test_labels_the_fonts_cannot_draw_fall_back_to_english(backtest) -> None:
    from reports.theme import can_render

    ts, eq = backtest.equity_ms, backtest.equity
    chinese = equity_chart(ts, eq, labels={"title": "权益", "drawdown": "回撤"})
    english = equity_chart(ts, eq)
    if can_render("权益回撤"):  # a CJK font is installed: the translation is drawn
        assert chinese != english
    else:
        assert chinese == english
    assert can_render("Kapital") and not can_render("\U0001d11e\U000e0001")  # musical clef, language tag
