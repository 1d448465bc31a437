"""The key figures of one run, read from its JSON summary (schema ``trtclient.bench/1``).

Sweep tables, capacity answers, comparisons and HTML reports all show these, so one load level reads
the same everywhere. ``tok/s per user`` is the decode speed a user sees: 1000 / mean TPOT (ms), the
definition GenAI-Perf and AIPerf use for their "output token throughput per user".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "Figure", "fmt", "format_rows", "key_figures", "level_label", "stat"]

Figure = float | None

#: (key, column header) of the table every command prints, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("requests_per_s", "req/s"),
    ("output_tokens_per_s", "out tok/s"),
    ("tokens_per_s_per_user", "tok/s/user"),
    ("ttft_p50", "TTFT p50"),
    ("ttft_p99", "TTFT p99"),
    ("tpot_p50", "TPOT p50"),
    ("tpot_p99", "TPOT p99"),
    ("e2e_p99", "E2E p99"),
    ("failed", "failed"),
)


def stat(summary: Mapping[str, Any], metric: str, statistic: str) -> Figure:
    """``summary[metric_ms][statistic]`` or None when the run did not define it."""
    block = summary.get(f"{metric}_ms")
    if not isinstance(block, Mapping):
        return None
    value = block.get(statistic)
    return None if value is None else float(value)


def key_figures(summary: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of :data:`COLUMNS` from a bench JSON summary (latencies in ms)."""
    tpot_mean = stat(summary, "tpot", "mean")
    requests = summary.get("requests") or {}
    return {
        "requests_per_s": _float(summary.get("requests_per_s")),
        "output_tokens_per_s": _float(summary.get("output_tokens_per_s")),
        "tokens_per_s_per_user": 1000.0 / tpot_mean if tpot_mean else None,
        "ttft_p50": stat(summary, "ttft", "p50"),
        "ttft_p99": stat(summary, "ttft", "p99"),
        "tpot_p50": stat(summary, "tpot", "p50"),
        "tpot_p99": stat(summary, "tpot", "p99"),
        "e2e_p99": stat(summary, "e2e", "p99"),
        "failed": _float(requests.get("failed")),
    }


def _float(value: Any) -> Figure:
    return None if value is None else float(value)


def level_label(summary: Mapping[str, Any]) -> str:
    """``c=4`` or ``4 req/s`` (or ``burst 20``): the load level a summary was run at."""
    load = (summary.get("config") or {}).get("load") or {}
    kind = load.get("kind")
    if kind == "concurrency":
        return f"c={load.get('concurrency')}"
    if kind == "rate":
        return f"{load.get('rate'):g} req/s"
    if kind == "burst":
        return f"burst {load.get('size')}"
    return "?"


def fmt(value: Figure) -> str:
    """A figure in a table cell: 3 significant digits or so, ``-`` when missing."""
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_rows(first_header: str, rows: Sequence[tuple[str, Mapping[str, Figure]]]) -> list[str]:
    """A plain-text table: one row per (label, figures), the columns of :data:`COLUMNS` (ms)."""
    header = [first_header, *(title for _, title in COLUMNS)]
    cells = [[label, *(fmt(figs.get(key)) for key, _ in COLUMNS)] for label, figs in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    lines = []
    for n, row in enumerate([header, *cells]):
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(parts).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines
