"""Figure → PNG bytes without pyplot.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never registered with pyplot's global
figure manager, and cleared after saving: a bot that renders charts for months must not keep them alive.
Theme rcParams are process-global in matplotlib, so building and saving happen under one lock; the bot renders
from worker threads (``asyncio.to_thread``) and two concurrent charts must not see each other's theme.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.theme import DPI, Theme, get_theme

_LOCK = threading.RLock()

Draw = Callable[[Figure, Theme], None]


def render(draw: Draw, theme: str | Theme = "light", size_px: tuple[int, int] = (1080, 1080)) -> bytes:
    """Create a figure of exactly ``size_px`` pixels in ``theme``, let ``draw`` fill it, return the PNG."""
    th = get_theme(theme)
    width, height = size_px
    with _LOCK, mpl.rc_context(th.rc()):
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        try:
            draw(fig, th)
            buf = io.BytesIO()
            # No bbox_inches="tight": it would change the pixel size, and the size is part of the contract.
            fig.savefig(buf, format="png", dpi=DPI, facecolor=th.background)
            return buf.getvalue()
        finally:
            fig.clear()


def build(draw: Draw, theme: str | Theme = "light", size_px: tuple[int, int] = (1080, 1080)) -> Figure:
    """The drawn figure itself (tests read tick labels from it); the caller owns it and should drop it after use."""
    th = get_theme(theme)
    width, height = size_px
    with _LOCK, mpl.rc_context(th.rc()):
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig, th)
        fig.canvas.draw()  # resolves locators and formatters so tick labels are final
        return fig
