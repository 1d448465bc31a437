"""A bench summary written in GenAI-Perf's and AIPerf's export layouts, so their readers read ours.

Both peers write one JSON object per metric, ``{"unit": "ms", "avg": ..., "min": ..., "max": ...,
"p50": ..., "p90": ..., "p99": ..., "std": ...}`` under their metric names, and a CSV of two tables (the
per-request metrics with their statistics, a blank line, then ``Metric,Value`` for the run's rates).
AIPerf adds ``was_cancelled``, ``start_time``/``end_time``, ``error_request_count`` and
``error_summary``. Facts and sources are in ``docs/bench.md`` ("Exports for GenAI-Perf and AIPerf").

Metrics are mapped by definition: their ``inter_token_latency`` is our TPOT, their
``request_latency`` our E2E. Statistics we do not compute (p1, p5, p10, p25, p75) are left out of the
JSON and empty in the CSV rather than made up.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["EXPORT_FORMATS", "PEER_METRICS", "export_paths", "peer_summary", "write_peer_export"]

ExportFormat = Literal["genai-perf", "aiperf"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("genai-perf", "aiperf")

#: (their name, our summary block, unit): the per-request metrics, in their order.
PEER_METRICS: tuple[tuple[str, str, str], ...] = (
    ("time_to_first_token", "ttft_ms", "ms"),
    ("inter_token_latency", "tpot_ms", "ms"),
    ("request_latency", "e2e_ms", "ms"),
    ("output_sequence_length", "output_tokens", "tokens"),
    ("input_sequence_length", "input_tokens", "tokens"),
)
#: Our summary's statistic for each of theirs.
_STATS = {"avg": "mean", "min": "min", "max": "max", "p50": "p50", "p90": "p90", "p95": "p95",
          "p99": "p99", "std": "std"}  # fmt: skip
#: Their CSV's statistic columns, in each tool's order.
_CSV_STATS: dict[ExportFormat, tuple[str, ...]] = {
    "genai-perf": ("avg", "min", "max", "p99", "p95", "p90", "p75", "p50", "p25"),
    "aiperf": ("avg", "min", "max", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "std"),
}


def _block(summary: Mapping[str, Any] | None, unit: str) -> dict[str, Any] | None:
    if not summary:
        return None
    out: dict[str, Any] = {"unit": unit}
    out.update({theirs: summary[ours] for theirs, ours in _STATS.items() if summary.get(ours) is not None})
    return out


def _rates(bench: Mapping[str, Any], fmt: ExportFormat) -> dict[str, dict[str, Any]]:
    out = {
        "request_throughput": {"unit": "requests/sec", "avg": bench["requests_per_s"]},
        "output_token_throughput": {"unit": "tokens/sec", "avg": bench["output_tokens_per_s"]},
        "request_count": {
            "unit": "count" if fmt == "genai-perf" else "requests",
            "avg": bench["requests"]["ok"],
        },
    }
    tpot = bench.get("tpot_ms") or {}
    if tpot.get("mean"):
        out["output_token_throughput_per_user"] = {"unit": "tokens/sec/user", "avg": 1000.0 / tpot["mean"]}
    goodput = bench.get("goodput")
    if goodput:
        out["request_goodput"] = {"unit": "requests/sec", "avg": goodput["requests_per_s"]}
    return out


def peer_summary(bench: Mapping[str, Any], fmt: ExportFormat) -> dict[str, Any]:
    """The bench JSON summary (``trtclient.bench/1``) in ``fmt``'s summary layout."""
    out: dict[str, Any] = {}
    for theirs, ours, unit in PEER_METRICS:
        block = _block(bench.get(ours), unit)
        if block is not None:
            out[theirs] = block
    out.update(_rates(bench, fmt))
    config = bench.get("config", {})
    endpoint = {"url": config.get("url"), "streaming": True, "exported_by": "trtclient bench"}
    models = [config.get("model")]
    if fmt == "genai-perf":
        out["input_config"] = {"model_names": models, "endpoint": endpoint}
    else:
        out["input_config"] = {"endpoint": {"model_names": models, **endpoint}}
    if fmt == "aiperf":
        out["benchmark_duration"] = {"unit": "sec", "avg": bench["duration_s"]}
        out["was_cancelled"] = bool(bench.get("interrupted"))
        out["error_request_count"] = {"unit": "requests", "avg": bench["requests"]["failed"]}
        out["error_summary"] = [
            {
                "error_details": {"code": None, "type": kind, "message": message["message"]},
                "count": message["count"],
            }
            for kind, reason in (bench.get("failure_reasons") or {}).items()
            for message in reason["messages"]
        ]
        end = datetime.now(UTC)
        start = datetime.fromtimestamp(end.timestamp() - float(bench["duration_s"]), UTC)
        out["start_time"], out["end_time"] = start.isoformat(), end.isoformat()
    return out


def _label(name: str, unit: str, fmt: ExportFormat) -> str:
    title = name.replace("_", " ").title()
    if fmt == "genai-perf" and unit == "tokens":
        return title
    return f"{title} ({unit})"


def _csv_rows(summary: Mapping[str, Any], fmt: ExportFormat) -> list[list[str]]:
    stats = _CSV_STATS[fmt]
    rows: list[list[str]] = [["Metric", *stats]]
    for theirs, _, unit in PEER_METRICS:
        block = summary.get(theirs)
        if block:
            rows.append([_label(theirs, unit, fmt), *(_number(block.get(s)) for s in stats)])
    rows.append([])
    rows.append(["Metric", "Value"])
    for name in ("request_throughput", "output_token_throughput", "request_count", "request_goodput"):
        block = summary.get(name)
        if block:
            rows.append([_label(name, block["unit"], fmt), _number(block["avg"])])
    return rows


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def export_paths(json_path: Path | None, fmt: ExportFormat) -> tuple[Path, Path]:
    """Where ``fmt``'s JSON and CSV go: beside ``--json`` (named after it), else the current directory."""
    folder = json_path.parent if json_path is not None else Path(".")
    stem = json_path.stem if json_path is not None else "profile_export"
    name = f"{stem}_genai_perf" if fmt == "genai-perf" else f"{stem}_aiperf"
    return folder / f"{name}.json", folder / f"{name}.csv"


def write_peer_export(bench: Mapping[str, Any], fmt: ExportFormat, json_path: Path | None) -> list[Path]:
    """Write ``fmt``'s summary JSON and CSV; the paths written."""
    summary = peer_summary(bench, fmt)
    target_json, target_csv = export_paths(json_path, fmt)
    target_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with target_csv.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(_csv_rows(summary, fmt))
    return [target_json, target_csv]
