"""Light and dark palettes sized for a phone screen.

Charts are 1080 px wide (what Telegram shows full-width on most phones) at 180 dpi, so a 14 pt label is about
35 px tall: readable without zooming. Up/down colours come from the Okabe-Ito set (bluish green and vermillion),
which stays distinguishable for red-green colour blindness, and every chart adds a shape cue as well (hollow vs
filled candles, hatched losses, triangle markers) so colour is never the only signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

DPI = 180
WIDTH_PX = 1080

# Portrait and square sizes in pixels; Telegram previews up to 4:5 without cropping.
SQUARE = (WIDTH_PX, 1080)
PORTRAIT = (WIDTH_PX, 1350)
TALL = (WIDTH_PX, 1620)

BASE_PT = 14.0
TITLE_PT = 17.0
SMALL_PT = 14.0  # the floor: nothing on a chart is drawn smaller than this

# CJK fonts first when installed, so the bot's zh_CN labels render; DejaVu Sans (shipped with matplotlib) is the
# fallback. Only installed families are listed: matplotlib logs a warning for every missing one.
_CJK = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei")


def _font_family() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[name for name in _CJK if name in installed]]


@lru_cache(maxsize=1)
def _charset() -> frozenset[int]:
    """Code points the chart fonts can draw (DejaVu Sans plus any installed CJK family)."""
    points: set[int] = set()
    for family in _font_family():
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        points.update(FT2Font(path).get_charmap())
    return frozenset(points)


def can_render(text: str) -> bool:
    """Whether every character of ``text`` has a glyph: a zh_CN label on a server without CJK fonts would
    otherwise come out as empty boxes."""
    charset = _charset()
    return all(ord(ch) in charset or ch.isspace() for ch in text)


@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    panel: str  # plot area
    foreground: str  # text, axes
    muted: str  # secondary text, grid
    grid: str
    up: str  # profit, rising candle, long
    down: str  # loss, falling candle, short
    accent: str  # equity line, neutral series
    stop: str  # stop lines and stop exits
    band: str  # Monte Carlo bands are shades of this
    band_alpha: tuple[float, float] = (0.22, 0.45)  # outer, inner; a dark panel needs more to show the band

    def rc(self) -> dict[str, Any]:
        """rcParams for a figure drawn in this theme (applied with ``rc_context`` only while rendering)."""
        return {
            "figure.facecolor": self.background,
            "figure.edgecolor": self.background,
            "savefig.facecolor": self.background,
            "savefig.edgecolor": self.background,
            "axes.facecolor": self.panel,
            "axes.edgecolor": self.muted,
            "axes.labelcolor": self.foreground,
            "axes.titlecolor": self.foreground,
            "axes.titlesize": TITLE_PT,
            "axes.titleweight": "bold",
            "axes.labelsize": BASE_PT,
            "axes.linewidth": 1.0,
            "axes.grid": True,
            "axes.axisbelow": True,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "grid.color": self.grid,
            "grid.linewidth": 0.8,
            "grid.alpha": 1.0,
            "text.color": self.foreground,
            "xtick.color": self.foreground,
            "ytick.color": self.foreground,
            "xtick.labelsize": SMALL_PT,
            "ytick.labelsize": SMALL_PT,
            "xtick.major.size": 5,
            "ytick.major.size": 5,
            "font.size": BASE_PT,
            "font.family": "sans-serif",
            "font.sans-serif": _font_family(),
            "legend.fontsize": SMALL_PT,
            "legend.frameon": True,
            "legend.facecolor": self.panel,
            "legend.edgecolor": self.muted,
            "legend.framealpha": 0.9,
            "figure.titlesize": TITLE_PT,
            "figure.titleweight": "bold",
            "lines.linewidth": 2.4,
            "lines.antialiased": True,
            "hatch.color": self.foreground,
            "hatch.linewidth": 1.2,
            "axes.unicode_minus": True,
            "savefig.dpi": DPI,
            "figure.dpi": DPI,
        }


LIGHT = Theme(
    name="light",
    background="#FFFFFF",
    panel="#FFFFFF",
    foreground="#111111",
    muted="#555555",
    grid="#DDDDDD",
    up="#007A5E",  # Okabe-Ito bluish green, darkened for contrast on white
    down="#C84B00",  # Okabe-Ito vermillion, darkened
    accent="#0060A8",  # Okabe-Ito blue
    stop="#7A1FA2",
    band="#0072B2",
)

DARK = Theme(
    name="dark",
    background="#111418",
    panel="#161B21",
    foreground="#F2F2F2",
    muted="#A0A8B0",
    grid="#2E3640",
    up="#3CC9A0",
    down="#FF8A4C",
    accent="#5EB4F0",
    stop="#D99CF0",
    band="#56B4E9",  # Okabe-Ito sky blue
    band_alpha=(0.35, 0.65),
)

THEMES = {"light": LIGHT, "dark": DARK}


def get_theme(theme: str | Theme) -> Theme:
    if isinstance(theme, Theme):
        return theme
    try:
        return THEMES[theme]
    except KeyError:
        raise ValueError(f"unknown theme {theme!r}; known: {', '.join(THEMES)}") from None
