"""What a run produces: the console table, the JSON summary (versioned schema) and the per-request CSV.

The JSON summary's schema is ``trtclient.bench/1``, documented in ``docs/bench.md``. Latency blocks are
in milliseconds and carry ``count, mean, std, min, p50, p90, p95, p99, max`` (``null`` when no request
defined the metric). ``compat`` repeats the headline figures under the field names of vLLM's
``bench serve`` and of GenAI-Perf/AIPerf, mapped by definition, not by name (their "ITL" is our TPOT).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtclient.loadtest import metrics as m
from trtclient.loadtest.breakdown import WorkloadBreakdown, format_breakdown
from trtclient.loadtest.histogram import RELATIVE_ERROR
from trtclient.loadtest.metrics import RunMetrics, Summary
from trtclient.loadtest.recorder import KV_CACHE_FIELDS
from trtclient.loadtest.records import RequestRecord

__all__ = [
    "SCHEMA",
    "ClientLoad",
    "Report",
    "client_warnings",
    "format_console",
    "summaries_note",
    "to_json",
    "write_csv",
    "write_json",
]

SCHEMA = "trtclient.bench/1"
_ARRIVAL_CLOCKS = {
    "kernel": "on receipt (kernel)",
    "read": "when read",
    "mixed": "on receipt or when read",
}
MS = 1e-6

#: Client CPU (in cores) from which the client may be what limits the run.
CPU_WARN_CORES = 0.85
#: Runs shorter than this (seconds) get no CPU warning.
CPU_WARN_MIN_WALL_S = 1.0
#: Schedule lag p99 (ms) from which sends were noticeably late, when it is also at least this share of
#: the median TTFT (a 10 ms late send matters for a 50 ms TTFT, hardly for a 2 s one).
LAG_WARN_MS = 10.0
LAG_WARN_SHARE = 0.05

_LATENCIES: tuple[tuple[str, str], ...] = (
    ("ttft", "TTFT"),
    ("ttft_sched", "TTFT from schedule"),
    ("tth", "time to headers"),
    ("itl", "ITL (per event)"),
    ("tpot", "TPOT"),
    ("e2e", "E2E"),
    ("e2e_sched", "E2E from schedule"),
    ("schedule_lag", "schedule lag"),
    ("first_token_lag", "first token engine->client"),
)


@dataclass(frozen=True)
class ClientLoad:
    """The load generator's own cost: CPU seconds (all threads) over wall seconds of the run."""

    cpu_s: float
    wall_s: float

    @property
    def cores(self) -> float:
        """Average CPU cores the client used."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class Report:
    """Everything a run's outputs are made from."""

    config: dict[str, Any]
    metrics: RunMetrics
    client: ClientLoad
    server: dict[str, Any] | None = None
    """Summary of Triton's /metrics over the run (see :mod:`trtclient.bench.scrape`)."""
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    """Signs that the client, not the server, limited the run."""
    notes: list[str] = field(default_factory=list)
    """Facts about how the run was made (e.g. output lengths could not be forced)."""
    workload: WorkloadBreakdown | None = None
    """Latency by KV-cache hit or miss, by turn, by adapter (when the run had any of them)."""


def client_warnings(metrics: RunMetrics, client: ClientLoad) -> list[str]:
    """Warnings when the client, not the server, may be what the run measured."""
    out = []
    # A run of a few milliseconds is mostly start-up work: its CPU share says nothing about the load.
    if client.cores >= CPU_WARN_CORES and client.wall_s >= CPU_WARN_MIN_WALL_S:
        out.append(
            f"the client used {client.cores:.2f} CPU cores: it may be the bottleneck "
            "(fewer streams per process, or several processes via Locust)"
        )
    lag, ttft = metrics.schedule_lag, metrics.ttft
    relative = ttft is None or lag is None or lag.p99 >= LAG_WARN_SHARE * ttft.p50
    if lag is not None and lag.p99 * MS >= LAG_WARN_MS and relative:
        out.append(
            f"schedule lag p99 is {lag.p99 * MS:.1f} ms: requests left later than planned, "
            "so the offered load was lower than asked (see ttft_sched for the user's view)"
        )
    return out


# ---------------------------------------------------------------- JSON


def _ms(summary: Summary | None) -> dict[str, float] | None:
    return None if summary is None else summary.scaled(MS).as_dict()


def _compat(mt: RunMetrics) -> dict[str, dict[str, float | None]]:
    def pick(s: Summary | None, attr: str) -> float | None:
        return None if s is None else float(getattr(s.scaled(MS), attr))

    vllm: dict[str, float | None] = {
        "completed": float(mt.counts.ok),
        "request_throughput": mt.requests_per_s,
        "output_throughput": mt.output_tokens_per_s,
    }
    for ours, theirs in (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"), ("e2e", "e2el")):
        s = getattr(mt, ours)
        vllm[f"mean_{theirs}_ms"] = pick(s, "mean")
        vllm[f"median_{theirs}_ms"] = pick(s, "p50")
        vllm[f"std_{theirs}_ms"] = pick(s, "std")
        for q in m.PERCENTILES:
            vllm[f"p{q}_{theirs}_ms"] = pick(s, f"p{q}")
    genai: dict[str, float | None] = {
        "request_throughput_per_sec": mt.requests_per_s,
        "output_token_throughput_per_sec": mt.output_tokens_per_s,
    }
    for ours, theirs in (
        ("ttft", "time_to_first_token_ms"),
        ("tpot", "inter_token_latency_ms"),
        ("itl", "inter_chunk_latency_ms"),
        ("e2e", "request_latency_ms"),
    ):
        s = getattr(mt, ours)
        genai[f"{theirs}_avg"] = pick(s, "mean")
        for q in m.PERCENTILES:
            genai[f"{theirs}_p{q}"] = pick(s, f"p{q}")
    return {"vllm": vllm, "genai_perf_aiperf": genai}


def to_json(report: Report) -> dict[str, Any]:
    """The JSON summary (schema ``trtclient.bench/1``)."""
    mt = report.metrics
    seconds = mt.window_ns / 1e9
    goodput = None
    if mt.good_requests is not None:
        goodput = {
            "slos_ms": {k: v * MS for k, v in mt.slos_ns.items()},
            "good_requests": mt.good_requests,
            "requests_per_s": mt.goodput_per_s,
            "fraction": mt.good_requests / mt.counts.ok if mt.counts.ok else 0.0,
        }
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "config": report.config,
        "interrupted": report.interrupted,
        "duration_s": seconds,
        "requests": {
            "sent": mt.counts.sent,
            "ok": mt.counts.ok,
            "failed": mt.counts.failed,
            "cancelled": mt.counts.cancelled,
            "warmup": mt.counts.warmup,
        },
        "failures": mt.failures,
        "failure_reasons": {r.kind: r.as_dict() for r in mt.failure_reasons},
        "requests_per_s": mt.requests_per_s,
        "output_tokens_per_s": mt.output_tokens_per_s,
        "goodput": goodput,
    }
    for name, _ in _LATENCIES:
        out[f"{name}_ms"] = _ms(getattr(mt, name))
    out["tokens"] = {
        "input": None if mt.input_tokens is None else mt.input_tokens.as_dict(),
        "output": None if mt.output_tokens is None else mt.output_tokens.as_dict(),
        "input_source": mt.input_token_sources,
        "output_source": mt.output_token_sources,
        "disagreements": {k: {"compared": a, "differ": b} for k, (a, b) in mt.token_disagreements.items()},
        "length_check": {
            "checked": mt.length_check.checked,
            "mismatched": mt.length_check.mismatched,
            "examples": [
                {"index": i, "requested": want, "received": got} for i, want, got in mt.length_check.examples
            ],
        },
    }
    out["client"] = {
        "cpu_s": report.client.cpu_s,
        "wall_s": report.client.wall_s,
        "cpu_cores": report.client.cores,
    }
    out["workload"] = report.workload.to_json() if report.workload else None
    out["server_metrics"] = report.server
    out["warnings"] = report.warnings
    out["notes"] = report.notes
    out["summaries"] = summaries_note(mt)
    out["definitions"] = m.DEFINITIONS
    out["compat"] = _compat(mt)
    return out


def summaries_note(mt: RunMetrics) -> dict[str, Any]:
    """Which figures of the JSON are exact and which come from histograms, with the bound."""
    if mt.percentiles == "exact":
        return {"exact": "every figure", "from_histograms": [], "bound": None}
    return {
        "exact": "requests, failures, rates, goodput, tokens; count, mean, std, min and max of each latency",
        "from_histograms": ["p50", "p90", "p95", "p99"],
        "bound": {
            "method": "nearest rank of microsecond buckets with three significant digits",
            "below_1_ms_us": 0.5,
            "relative_above_1_ms": RELATIVE_ERROR,
        },
    }


def write_json(report: Report, path: str | Path) -> None:
    """Write the JSON summary to ``path``."""
    Path(path).write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "index",
    "warmup",
    "status",
    "error_kind",
    "http_status",
    "prompt_id",
    "intended_s",
    "schedule_lag_ms",
    "tth_ms",
    "ttft_ms",
    "ttft_sched_ms",
    "tpot_ms",
    "itl_mean_ms",
    "e2e_ms",
    "e2e_sched_ms",
    "input_tokens",
    "input_tokens_source",
    "output_tokens",
    "output_tokens_source",
    "requested_output_tokens",
    "content_events",
    "kv_hit_rate",
    "turn",
    "adapter",
    "session",
    "kv_reused_blocks",
    "kv_new_blocks",
    "kv_total_blocks",
)


def _count(value: int | None) -> int | str:
    return "" if value is None else value


def _cell(value: float | None, scale: float = MS) -> str:
    return "" if value is None else f"{value * scale:.3f}"


def write_csv(records: Iterable[RequestRecord], path: str | Path) -> None:
    """One row per request with its derived metrics (ms); ``intended_s`` is relative to the first request."""
    rows = sorted(records, key=lambda r: r.index)
    t0 = min((r.intended_ns for r in rows), default=0)
    with Path(path).open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            gaps = m.itl_ns(r)
            writer.writerow(
                [
                    r.index,
                    int(r.warmup),
                    r.status,
                    r.error_kind or "",
                    r.http_status or "",
                    r.prompt_id,
                    _cell(r.intended_ns - t0, 1e-9),
                    _cell(m.schedule_lag_ns(r)),
                    _cell(m.tth_ns(r)),
                    _cell(m.ttft_ns(r)),
                    _cell(m.ttft_sched_ns(r)),
                    _cell(m.tpot_ns(r)),
                    _cell(sum(gaps) / len(gaps) if gaps else None),
                    _cell(m.e2e_ns(r)),
                    _cell(m.e2e_sched_ns(r)),
                    "" if r.input_tokens is None else r.input_tokens,
                    r.input_tokens_source or "",
                    "" if r.output_tokens is None else r.output_tokens,
                    r.output_tokens_source or "",
                    "" if r.requested_output_tokens is None else r.requested_output_tokens,
                    len(r.event_ns),
                    _cell(m.kv_hit_rate(r), 1.0),
                    "" if r.turn is None else r.turn,
                    r.adapter or "",
                    r.session or "",
                    *(_count(r.kv_cache.get(name)) for name in KV_CACHE_FIELDS),
                ]
            )


# ---------------------------------------------------------------- console


def _fmt(value: float) -> str:
    """Three significant digits (whole numbers from 100 up): 1234, 35.7, 2.01, 0.0123."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def _source_note(sources: Mapping[str, int]) -> str:
    names = {"server": "server-reported", "tokenizer": "client tokenizer", "events": "content events"}
    return ", ".join(f"{names.get(k, k)} ({v})" for k, v in sources.items()) or "none"


def format_console(report: Report) -> str:
    """The run as a short plain-text report."""
    mt = report.metrics
    c = mt.counts
    lines: list[str] = []
    title = report.config.get("description", "trtclient bench")
    lines.append(f"{title}{'  [interrupted: partial results]' if report.interrupted else ''}")
    failed = f"{c.failed} failed" + (
        " (" + ", ".join(f"{k} {v}" for k, v in mt.failures.items()) + ")" if mt.failures else ""
    )
    warm = f"  (+{c.warmup} warm-up, not counted)" if c.warmup else ""
    lines.append(f"requests     {c.sent} sent: {c.ok} ok, {failed}, {c.cancelled} cancelled{warm}")
    lines.append(
        f"throughput   {mt.requests_per_s:.2f} req/s, {mt.output_tokens_per_s:.1f} output tokens/s "
        f"over {mt.window_ns / 1e9:.2f} s"
    )
    lines.extend(format_failures(mt))
    if mt.good_requests is not None:
        slos = ", ".join(f"{k} <= {v * MS:g} ms" for k, v in mt.slos_ns.items())
        share = mt.good_requests / c.ok if c.ok else 0.0
        lines.append(
            f"goodput      {mt.goodput_per_s or 0:.2f} req/s "
            f"({mt.good_requests} of {c.ok} ok, {share:.0%}) at {slos}"
        )
    if mt.output_tokens is not None:
        lines.append(
            f"tokens       output {mt.output_tokens.mean:.1f}/request "
            f"(counted by {_source_note(mt.output_token_sources)})"
        )
    lines.append("")
    rows = []
    for name, label in _LATENCIES:
        s = getattr(mt, name)
        if s is None:
            continue
        s = s.scaled(MS)
        rows.append(
            [
                label,
                str(s.count),
                *(_fmt(v) for v in (s.mean, s.std, s.min, s.p50, s.p90, s.p95, s.p99, s.max)),
            ]
        )
    if rows:
        lines.extend(
            _table(["latency (ms)", "n", "mean", "std", "min", "p50", "p90", "p95", "p99", "max"], rows)
        )
    else:
        lines.append("  no successful request: no latency figures")
    lc = mt.length_check
    if lc.checked:
        verdict = "all as requested" if not lc.mismatched else f"{lc.mismatched} of {lc.checked} differ"
        examples = ", ".join(f"#{i}: asked {w}, got {g}" for i, w, g in lc.examples)
        lines.append("")
        lines.append(
            f"output length forced on {lc.checked} requests: {verdict}"
            + (f" ({examples})" if examples else "")
        )
    for pair, (compared, differ) in mt.token_disagreements.items():
        if differ:
            lines.append(f"token counts disagree ({pair}) on {differ} of {compared} requests")
    if report.workload:
        lines.extend(format_breakdown(report.workload))
    if report.server:
        lines.append("")
        lines.extend(format_server(report.server))
    lines.append("")
    lag = mt.schedule_lag.scaled(MS) if mt.schedule_lag else None
    lag_text = f", schedule lag p99 {lag.p99:.2f} ms" if lag else ""
    clock = _ARRIVAL_CLOCKS.get(str(report.config.get("arrival_clock")))
    clock_text = f", arrivals stamped {clock}" if clock else ""
    lines.append(
        f"client       {report.client.cores:.2f} CPU cores over {report.client.wall_s:.2f} s{lag_text}"
        f"{clock_text}"
    )
    lines.extend(f"note: {n}" for n in report.notes)
    lines.extend(f"warning: {w}" for w in report.warnings)
    return "\n".join(lines)


def format_failures(mt: RunMetrics) -> list[str]:
    """One line per failure kind: its count and the server's most common messages."""
    return [
        f"  failed {r.kind} ({r.count}): "
        + "; ".join(f"{text!r}" + (f" x{n}" if n > 1 else "") for text, n in r.messages)
        for r in mt.failure_reasons
    ]


def format_server(server: Mapping[str, Any]) -> list[str]:
    """The server-side block of the console report."""
    if server.get("error"):
        return [f"server /metrics: not available ({server['error']})"]
    lines = [f"server (Triton /metrics, {server.get('scrapes', 0)} scrapes)"]
    rows = []
    for model, s in server.get("models", {}).items():
        if not s.get("requests") and not s.get("failures"):
            continue
        rows.append(
            [
                model,
                f"{s.get('requests', 0):.0f}",
                f"{s.get('failures', 0):.0f}",
                _opt(s.get("queue_ms_per_request")),
                _opt(s.get("compute_infer_ms_per_request")),
                _opt(s.get("request_ms_per_request")),
                _opt(s.get("pending_max"), digits=0),
            ]
        )
    if rows:
        lines.extend(
            _table(
                ["model", "requests", "failed", "queue ms", "compute ms", "request ms", "pending max"], rows
            )
        )
    for name, s in server.get("trt_llm", {}).items():
        lines.append(f"  {name}: max {_opt(s.get('max'))}, mean {_opt(s.get('mean'))}")
    return lines


def _opt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:.0f}"
    return _fmt(value)
