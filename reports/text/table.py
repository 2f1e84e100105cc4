"""Rows of (key, value) and a monospace table: the bot translates keys, values are already formatted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    key: str  # stable identifier, e.g. "max_drawdown"; the bot's catalog maps it to a label
    value: str  # formatted, language-neutral


def as_dict(rows: Sequence[Row]) -> dict[str, str]:
    return {r.key: r.value for r in rows}


def label_rows(rows: Sequence[Row], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) pairs; a key without a label shows as itself rather than disappearing."""
    return [(labels.get(r.key, r.key), r.value) for r in rows]


def format_table(cells: Sequence[Sequence[str]], align: str | None = None, gap: int = 2) -> str:
    """Columns padded to their widest cell; ``align`` is one letter per column, "l" or "r" (default: first
    column left, the rest right, which suits label/number tables). Meant for a ``<pre>`` block or a console."""
    if not cells:
        return ""
    ncol = max(len(r) for r in cells)
    rows = [list(r) + [""] * (ncol - len(r)) for r in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(ncol)]
    align = align or "l" + "r" * (ncol - 1)
    lines = []
    for r in rows:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=False)]
        lines.append((" " * gap).join(parts).rstrip())
    return "\n".join(lines)
