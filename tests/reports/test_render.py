"""Rendering leaks nothing, never touches pyplot, and keeps themes apart across threads."""

from __future__ import annotations

import ast
import gc
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from report_helpers import decode, hex_rgb

from reports.charts.equity import equity_chart
from reports.charts.pairs import pair_performance_chart
from reports.charts.pnl import daily_pnl_chart
from reports.series import daily_pnl, pair_performance
from reports.theme import get_theme

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def _figures() -> int:
    gc.collect()
    return sum(isinstance(o, Figure) for o in gc.get_objects())


def test_reports_never_use_pyplot() -> None:
    """pyplot keeps every figure in a global registry until closed: one forgotten close leaks in the bot."""
    for path in REPORTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            module = node.module if isinstance(node, ast.ImportFrom) else ""
            assert "matplotlib.pyplot" not in names and module != "matplotlib.pyplot", path
            assert not (module == "matplotlib" and "pyplot" in names), path


def test_many_renders_leak_no_figures_or_memory(backtest) -> None:
    days = daily_pnl(backtest.trades, "UTC", backtest.start_ms, backtest.end_ms)
    pairs = pair_performance(backtest.trades)

    def batch() -> None:
        equity_chart(backtest.equity_ms, backtest.equity, theme="dark")
        daily_pnl_chart(days)
        pair_performance_chart(pairs, theme="dark")

    batch()  # warm caches (fonts, glyphs, tick machinery)
    before = _figures()
    tracemalloc.start()
    try:
        batch()
        gc.collect()
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(4):
            batch()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _figures() == before
    # 12 charts; each figure holds several MB while alive, so a leak would show as tens of MB.
    assert after - base < 2_000_000, f"memory grew by {after - base} bytes"


def test_concurrent_renders_keep_their_own_theme(backtest) -> None:
    """rcParams are global; the render lock must keep a dark chart from picking up a light background."""
    days = daily_pnl(backtest.trades, "UTC", backtest.start_ms, backtest.end_ms)
    themes = ["light", "dark"] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = list(pool.map(lambda t: daily_pnl_chart(days, theme=t), themes))
    for theme, png in zip(themes, pngs, strict=True):
        px = np.asarray(decode(png), dtype=float)
        assert np.linalg.norm(px[2, -3] - hex_rgb(get_theme(theme).background)) < 3
        assert np.linalg.norm(px[2, 2] - hex_rgb(get_theme(theme).background)) < 3
