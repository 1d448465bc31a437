"""Readers for the files ``trtclient compare`` puts side by side, and the comparison tables.

It reads our own JSON (``trtclient.bench/1``, ``trtclient.sweep/1``, ``trtclient.capacity/1``) and the
summary exports of GenAI-Perf (``*_genai_perf.json``) and AIPerf (``profile_export_aiperf.json``). Both
peers write one object per metric, ``{"unit": "ms", "avg": ..., "p50": ..., "p99": ..., ...}``, at the top
level (AIPerf's export mimics GenAI-Perf's on purpose); AIPerf adds ``was_cancelled``, ``error_summary``
and ``start_time``/``end_time`` (docs/bench.md cites the sources). Their ``inter_token_latency`` is our
TPOT and their ``request_latency`` our E2E, by definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtclient.bench.figures import COLUMNS, Figure, fmt, key_figures, level_label

__all__ = ["CompareError", "Run", "compare_table", "load_run", "relative"]

#: Kinds of file, and the group each compares within.
GROUPS = {"bench": "single run", "genai-perf": "single run", "aiperf": "single run",
          "sweep": "sweep", "capacity": "capacity search"}  # fmt: skip
_TIME_UNITS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "ns": 1e-6}


class CompareError(ValueError):
    """A file that cannot be compared, with the reason."""


@dataclass(frozen=True)
class Run:
    """One file, read: its kind and its rows of key figures (one per load level)."""

    path: Path
    kind: str
    rows: tuple[tuple[str, Mapping[str, Figure]], ...]
    summaries: tuple[Mapping[str, Any], ...] = ()
    """Bench summaries of a sweep's levels (for overlaid curves)."""
    max_rate: float | None = None

    @property
    def name(self) -> str:
        """The file's name, as the table's column header."""
        return self.path.name


def _peer_stat(data: Mapping[str, Any], metric: str, statistic: str) -> Figure:
    block = data.get(metric)
    if not isinstance(block, Mapping) or block.get(statistic) is None:
        return None
    scale = _TIME_UNITS.get(str(block.get("unit", "ms")), 1.0) if metric not in _RATES else 1.0
    return float(block[statistic]) * scale


_RATES = {"request_throughput", "output_token_throughput", "output_token_throughput_per_user",
          "error_request_count"}  # fmt: skip


def peer_figures(data: Mapping[str, Any]) -> dict[str, Figure]:
    """Key figures of a GenAI-Perf or AIPerf summary export, under our names and definitions."""
    return {
        "requests_per_s": _peer_stat(data, "request_throughput", "avg"),
        "output_tokens_per_s": _peer_stat(data, "output_token_throughput", "avg"),
        "tokens_per_s_per_user": _peer_stat(data, "output_token_throughput_per_user", "avg"),
        "ttft_p50": _peer_stat(data, "time_to_first_token", "p50"),
        "ttft_p99": _peer_stat(data, "time_to_first_token", "p99"),
        "tpot_p50": _peer_stat(data, "inter_token_latency", "p50"),
        "tpot_p99": _peer_stat(data, "inter_token_latency", "p99"),
        "e2e_p99": _peer_stat(data, "request_latency", "p99"),
        "failed": _peer_stat(data, "error_request_count", "avg"),
    }


def _kind(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    schema = str(data.get("schema", ""))
    for ours in ("bench", "sweep", "capacity"):
        if schema.startswith(f"trtclient.{ours}/"):
            return ours
    peer_metric = data.get("time_to_first_token") or data.get("request_throughput")
    if isinstance(peer_metric, Mapping) and "unit" in peer_metric:
        return (
            "aiperf"
            if any(k in data for k in ("was_cancelled", "error_summary", "start_time"))
            else "genai-perf"
        )
    return None


def load_run(path: str | Path) -> Run:
    """Read one file; :class:`CompareError` says why it cannot be compared."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"{p}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    kind = _kind(data)
    if kind is None:
        raise CompareError(
            f"{p}: not a summary compare knows; give trtclient bench/sweep/capacity --json files, "
            "GenAI-Perf's *_genai_perf.json or AIPerf's profile_export_aiperf.json"
        )
    if kind == "bench":
        return Run(p, kind, ((level_label(data), key_figures(data)),), (data,))
    if kind == "sweep":
        levels = [entry for entry in data.get("levels", []) if "schema" in entry]
        rows = tuple((level_label(e), key_figures(e)) for e in levels)
        return Run(p, kind, rows, tuple(levels))
    if kind == "capacity":
        rate = data.get("max_rate")
        holding = [
            s for s in data.get("steps", []) if s.get("passed") and s.get("rate") == rate and "schema" in s
        ]
        figures = key_figures(holding[-1]) if holding else {}
        return Run(p, kind, ((f"at max rate {rate if rate is not None else '-'}", figures),), max_rate=rate)
    return Run(p, kind, (("summary", peer_figures(data)),))


def relative(value: Figure, base: Figure) -> str:
    """``+12%`` / ``-3.4%`` against ``base`` (empty when either is missing or the base is 0)."""
    if value is None or base is None or base == 0:
        return ""
    change = (value - base) / abs(base) * 100
    return f"{change:+.0f}%" if abs(change) >= 10 else f"{change:+.1f}%"


def check_comparable(runs: Sequence[Run]) -> None:
    """All files must be of one group (single runs, sweeps, or capacity searches)."""
    groups = {GROUPS[r.kind] for r in runs}
    if len(groups) > 1:
        listing = ", ".join(f"{r.name} ({r.kind})" for r in runs)
        raise CompareError(
            f"cannot compare files of different kinds: {listing}; compare single runs (bench, "
            "GenAI-Perf, AIPerf) together, sweeps together, or capacity searches together"
        )


def compare_table(runs: Sequence[Run]) -> list[str]:
    """One row per figure (single runs, capacity) or per level and figure (sweeps), one column per file.

    Every file after the first shows its relative difference to the first.
    """
    check_comparable(runs)
    base = runs[0]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # e.g. two profile_export_aiperf.json from different directories
        names = [str(r.path) for r in runs]
    header = ["figure", *(f"{name} ({r.kind})" for name, r in zip(names, runs, strict=True))]
    rows: list[list[str]] = []
    if base.kind == "capacity":
        rates = [r.max_rate for r in runs]
        rows.append(["max rate (req/s)", *(_cell(v, rates[0], i) for i, v in enumerate(rates))])
    labels = [label for label, _ in base.rows]
    for r in runs[1:]:
        labels += [label for label, _ in r.rows if label not in labels and r.kind == "sweep"]
    for label in labels:
        per_run = [_row_of(r, label, len(labels) == 1) for r in runs]
        for key, title in COLUMNS:
            values = [None if figs is None else figs.get(key) for figs in per_run]
            name = title if len(labels) == 1 else f"{label}  {title}"
            rows.append([name, *(_cell(v, values[0], i) for i, v in enumerate(values))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = []
    for n, row in enumerate([header, *rows]):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _row_of(run: Run, label: str, single: bool) -> Mapping[str, Figure] | None:
    if single:
        return run.rows[0][1] if run.rows else None
    return next((figs for name, figs in run.rows if name == label), None)


def _cell(value: Figure, base: Figure, index: int) -> str:
    text = fmt(value)
    change = relative(value, base) if index else ""
    return f"{text} ({change})" if change else text
