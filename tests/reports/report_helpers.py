"""PNG checks shared by the report tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def decode(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def hex_rgb(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)], dtype=float)


def colour_share(image: Image.Image, colour: str, tol: float = 40.0) -> float:
    """Share of pixels within ``tol`` (Euclidean, RGB) of ``colour``: proof that a series was drawn."""
    px = np.asarray(image, dtype=float)
    return float((np.linalg.norm(px - hex_rgb(colour), axis=2) < tol).mean())


def assert_chart(png: bytes, size: tuple[int, int], background: str) -> Image.Image:
    """Decodes, has exactly ``size``, the theme's background in the corner, and real content."""
    image = decode(png)
    assert image.size == size
    px = np.asarray(image, dtype=float)
    assert np.linalg.norm(px[2, -3] - hex_rgb(background)) < 3, "corner is not the theme background"
    assert len(set(map(tuple, px.reshape(-1, 3)[::7].astype(int)))) > 40, "too few colours: blank?"
    assert px.mean(axis=2).std() > 12, "no contrast: blank?"
    h, w = px.shape[:2]
    centre = px[h // 5: 4 * h // 5, w // 5: 4 * w // 5]
    differs = np.linalg.norm(centre - hex_rgb(background), axis=2) > 30
    assert differs.mean() > 0.02, "the plotting area is empty"
    return image
