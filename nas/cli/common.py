"""Helpers shared by the sub-commands: JSON printing and table rendering."""
from __future__ import annotations

import json
import math
import sys
from typing import Any


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (NaN becomes null so every JSON parser reads it)."""

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    json.dump(clean(obj), sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Render a list of dicts as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    if rows:
        for col in rows[0]:
            table.add_column(str(col), justify="right" if isinstance(rows[0][col], (int, float)) else "left")
        for row in rows:
            table.add_row(*[_fmt(v) for v in row.values()])
    Console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
