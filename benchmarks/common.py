"""Shared shape of benchmark results: every benchmark returns ``Row``s for the one summary table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Row", "format_table"]


@dataclass(frozen=True)
class Row:
    """One figure a benchmark measured."""

    benchmark: str
    metric: str
    value: float
    unit: str
    note: str = ""


def format_table(rows: Iterable[Row]) -> str:
    """Render rows as an aligned plain-text table."""
    header = ("benchmark", "metric", "value", "unit", "note")
    cells = [header] + [(r.benchmark, r.metric, _fmt(r.value), r.unit, r.note) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
