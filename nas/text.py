"""Numbers and tables as people read them in a terminal or a Markdown file.

The CLI, the study report, the ablation claims and the confirmation all print narrow tables of
mixed numbers (accuracies, parameter counts, FLOPs); one definition keeps them reading alike.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["short_number", "pipe_table"]


def short_number(value: Any, digits: int = 4) -> str:
    """``0.9731``, ``12.3M``, ``4.56G``: ``digits`` significant digits below a thousand, three above;
    ``-`` for a missing value (None or nan)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.{digits}g}"


def pipe_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown pipe table (no trailing newline); a ``|`` inside a cell is escaped, so it stays one cell."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), "|" + "|".join("---" for _ in head) + "|", *(line(r) for r in rows)])
