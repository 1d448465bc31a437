"""The tables of a run's token statistics: totals line, latency and throughput rows, CSV, console and
the section added to Locust's HTML report. No locust or gevent import."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from pathlib import Path

from trtclient.loadtest import metrics as m
from trtclient.loadtest.breakdown import format_breakdown
from trtlocust._stats import HISTOGRAMS, LOCUST_ROWS, RunStats

__all__ = [
    "WORKLOAD_HEADERS",
    "workload_table",
    "LATENCY_ORDER",
    "LATENCY_HEADERS",
    "LATENCY_TITLES",
    "SECTION_ID",
    "THROUGHPUT_HEADERS",
    "THROUGHPUT_ORDER",
    "throughput_title",
    "add_to_html_report",
    "csv_text",
    "latency_table",
    "report_section",
    "summary_lines",
    "throughput_table",
    "totals_line",
    "write_csv",
]


def totals_line(stats: RunStats) -> str:
    """The counts in one ``key=value`` line, for logs (and the tests that read them)."""
    parts = {
        "ok": stats.ok,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "scheduled": stats.scheduled,
        "unsent": stats.unsent,
        "output_tokens": stats.output_tokens,
        **{f"n_{name}": h.count for name, h in stats.histograms.items()},
    }
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"


#: The latency rows in the order a request is read: its first token (and that TTFT split by KV-cache
#: reuse), the tokens after it, its end; then where the client's own timing shows (the planned start,
#: lateness of the send, the first token's lag behind the engine).
LATENCY_ORDER: tuple[str, ...] = (
    "ttft",
    "ttft_kv_hit",
    "ttft_kv_miss",
    "itl",
    "tpot",
    "e2e",
    "ttft_sched",
    "schedule_lag",
    "first_token_lag",
)
#: What the web UI and the HTML report call each latency row (the CSV and the console keep the keys).
LATENCY_TITLES: dict[str, str] = {
    "ttft": "Time to first token (TTFT)",
    "ttft_kv_hit": "TTFT, KV-cache reused",
    "ttft_kv_miss": "TTFT, no KV-cache reuse",
    "itl": "Inter-token latency (ITL)",
    "tpot": "Time per output token (TPOT)",
    "e2e": "End to end (E2E)",
    "ttft_sched": "TTFT from the planned start",
    "schedule_lag": "Send behind schedule",
    "first_token_lag": "First token behind the engine",
}


def _latency_rank(metric: str) -> int:
    return LATENCY_ORDER.index(metric) if metric in LATENCY_ORDER else len(LATENCY_ORDER)


def latency_table(stats: RunStats, label: str) -> list[dict[str, str]]:
    """The latency rows as strings, milliseconds, in :data:`LATENCY_ORDER` (keys: metric, title,
    name and :data:`LATENCY_COLUMNS`)."""
    rows = []
    for row in sorted(stats.latency_rows(), key=lambda r: _latency_rank(r.metric)):
        out = {
            "metric": row.metric.upper() if row.metric in LOCUST_ROWS else row.metric,
            "title": LATENCY_TITLES.get(row.metric, row.metric),
            "name": label,
        }
        out.update({k: str(int(v)) if k == "count" else _fmt(v) for k, v in row.cells().items()})
        rows.append(out)
    return rows


#: The throughput figures in reading order: the rates first (tokens, then requests), then the counts
#: behind them. ``failed_KIND`` follows ``requests_failed``; ``token_count_source_SOURCE`` comes last.
THROUGHPUT_ORDER: tuple[str, ...] = (
    "output_tokens_per_s_current",
    "output_tokens_per_s",
    "output_tokens_per_s_per_user_p50",
    "output_tokens_per_s_per_user_p10",
    "requests_per_s",
    "requests_ok",
    "requests_failed",
    "failed_",
    "requests_cancelled",
    "arrivals_scheduled",
    "arrivals_unsent",
    "output_tokens",
    "window",
    "kv_hit_rate_mean",
    "token_count_source_",
)
_THROUGHPUT_TITLES: dict[str, str] = {
    "output_tokens_per_s_current": "Output tokens/s, last 10 s",
    "output_tokens_per_s": "Output tokens/s, whole test",
    "output_tokens_per_s_per_user_p50": "Tokens/s per user (1/TPOT), median",
    "output_tokens_per_s_per_user_p10": "Tokens/s per user (1/TPOT), slowest tenth",
    "requests_per_s": "Successful requests/s",
    "requests_ok": "Requests succeeded",
    "requests_failed": "Requests failed",
    "requests_cancelled": "Requests cancelled",
    "arrivals_scheduled": "Arrivals planned",
    "arrivals_unsent": "Arrivals never sent (no free user)",
    "output_tokens": "Output tokens",
    "window": "Test window",
    "kv_hit_rate_mean": "KV-cache hit rate, mean",
}


def throughput_title(name: str) -> str:
    """The readable name of a throughput figure (``failed_KIND`` and ``token_count_source_SOURCE``
    name their kind and source)."""
    if name in _THROUGHPUT_TITLES:
        return _THROUGHPUT_TITLES[name]
    if name.startswith("failed_"):
        return f"Failed: {name.removeprefix('failed_')}"
    if name.startswith("token_count_source_"):
        return f"Token counts from: {name.removeprefix('token_count_source_')}"
    return name


def _throughput_rank(name: str) -> int:
    for i, key in enumerate(THROUGHPUT_ORDER):
        if name == key or (key.endswith("_") and name.startswith(key)):
            return i
    return len(THROUGHPUT_ORDER)


def throughput_table(stats: RunStats, now_s: float | None = None) -> list[dict[str, str]]:
    """The throughput figures as strings in :data:`THROUGHPUT_ORDER` (keys: name, title, value,
    unit); see :meth:`RunStats.throughput`."""
    figures = sorted(stats.throughput(now_s), key=lambda f: _throughput_rank(f[0]))
    return [
        {
            "name": name,
            "title": throughput_title(name),
            "value": str(int(value)) if unit in ("requests", "tokens") else _fmt(value),
            "unit": unit,
        }
        for name, value, unit in figures
    ]


#: What each split of the workload table is called (the CSV keeps the keys).
SPLIT_TITLES: dict[str, str] = {"kv_cache": "KV cache", "turns": "Turn", "adapters": "LoRA adapter"}
#: Columns of the workload table: the group, its counts and mean KV hit rate, TTFT and E2E in ms.
WORKLOAD_HEADERS: dict[str, str] = {
    "split": "Split",
    "group": "Group",
    "ok": "OK",
    "failed": "Failed",
    "kv_hit_rate": "KV hit rate",
    "ttft_p50": "TTFT 50%",
    "ttft_p90": "TTFT 90%",
    "ttft_p99": "TTFT 99%",
    "e2e_p50": "E2E 50%",
    "e2e_p99": "E2E 99%",
    "first_error": "First error",
}


def _ms_cell(summary: m.Summary | None, field: str) -> str:
    return "" if summary is None else _fmt(float(getattr(summary, field)) * 1e-6)


def workload_table(stats: RunStats) -> list[dict[str, str]]:
    """The requests split by KV-cache hit or miss, by turn and by LoRA adapter (the groups of
    ``trtclient.loadtest.breakdown``), milliseconds; keys: :data:`WORKLOAD_HEADERS` and ``title``."""
    split = stats.groups.breakdown()
    rows = []
    for key, groups in (("kv_cache", split.kv_cache), ("turns", split.turns), ("adapters", split.adapters)):
        for g in groups:
            rows.append(
                {
                    "split": key,
                    "title": SPLIT_TITLES[key],
                    "group": g.label,
                    "ok": str(g.ok),
                    "failed": str(g.failed),
                    "kv_hit_rate": "" if g.kv_hit_rate is None else f"{g.kv_hit_rate:.3f}",
                    "ttft_p50": _ms_cell(g.ttft, "p50"),
                    "ttft_p90": _ms_cell(g.ttft, "p90"),
                    "ttft_p99": _ms_cell(g.ttft, "p99"),
                    "e2e_p50": _ms_cell(g.e2e, "p50"),
                    "e2e_p99": _ms_cell(g.e2e, "p99"),
                    "first_error": g.first_error or "",
                }
            )
    return rows


LATENCY_HEADERS: dict[str, str] = {
    "metric": "Metric",
    "name": "Name",
    "count": "Count",
    "mean": "Mean",
    "std": "Std",
    "min": "Min",
    "p50": "50%",
    "p90": "90%",
    "p95": "95%",
    "p99": "99%",
    "max": "Max",
}
THROUGHPUT_HEADERS: dict[str, str] = {"name": "Name", "value": "Value", "unit": "Unit"}
_READABLE_LATENCY_HEADERS = {"title": "Metric", **{k: v for k, v in LATENCY_HEADERS.items() if k != "metric"}}
_READABLE_THROUGHPUT_HEADERS = {"title": "Figure", "value": "Value", "unit": "Unit"}
_READABLE_WORKLOAD_HEADERS = {"title": "Split", **{k: v for k, v in WORKLOAD_HEADERS.items() if k != "split"}}
#: The HTML id of the section added to Locust's report.
SECTION_ID = "trtclient-token-metrics"


def csv_text(rows: list[dict[str, str]], headers: Mapping[str, str]) -> str:
    """Rows as CSV with a header line (the headers' values)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers.values())
    for row in rows:
        writer.writerow(row[key] for key in headers)
    return out.getvalue()


def write_csv(stats: RunStats, prefix: str, label: str) -> tuple[Path, Path, Path]:
    """Write ``PREFIX_tokens.csv`` (latency, milliseconds), ``PREFIX_throughput.csv`` and
    ``PREFIX_workload.csv`` (:func:`workload_table`; the header alone when nothing was split)."""
    latency_path = Path(f"{prefix}_tokens.csv")
    throughput_path = Path(f"{prefix}_throughput.csv")
    workload_path = Path(f"{prefix}_workload.csv")
    latency_path.parent.mkdir(parents=True, exist_ok=True)
    latency_path.write_text(csv_text(latency_table(stats, label), LATENCY_HEADERS), encoding="utf-8")
    throughput_path.write_text(csv_text(throughput_table(stats), THROUGHPUT_HEADERS), encoding="utf-8")
    workload_path.write_text(csv_text(workload_table(stats), WORKLOAD_HEADERS), encoding="utf-8")
    return latency_path, throughput_path, workload_path


def summary_lines(stats: RunStats, label: str) -> list[str]:
    """The console summary: a latency table, then the throughput in one sentence."""
    columns = ("mean", "p50", "p90", "p99", "max")
    header = f"{'metric':<16}{'count':>8}" + "".join(f"{c:>10}" for c in columns)
    lines = [f"Token metrics of {label or 'the test'} (milliseconds)", header, "-" * len(header)]
    for row in latency_table(stats, label):
        lines.append(f"{row['metric']:<16}{row['count']:>8}" + "".join(f"{row[c]:>10}" for c in columns))
    per_user = stats.tokens_per_s_per_user(50)
    lines.append(
        f"requests ok {stats.ok}, failed {stats.failed}, cancelled {stats.cancelled}; "
        f"output tokens {stats.output_tokens}; {stats.requests_per_s():.2f} requests/s, "
        f"{stats.output_tokens_per_s():.1f} output tokens/s"
        + (f", {per_user:.1f} tokens/s per user (median)" if per_user is not None else "")
    )
    if stats.unsent:
        lines.append(f"{stats.unsent} planned arrivals found no free user before the end (raise -u)")
    lines += format_breakdown(stats.groups.breakdown())  # by KV cache, turn, adapter (as bench's)
    return lines


def _html_table(rows: list[dict[str, str]], headers: Mapping[str, str]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title in headers.values())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(row.get(key, ''))}</td>" for key in headers) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_section(stats: RunStats, label: str) -> str:
    """The token metrics as an HTML section (for Locust's ``--html`` report)."""
    definitions = "".join(
        f"<li><b>{html.escape(LATENCY_TITLES.get(name, name))}</b> (<code>{html.escape(name)}</code>): "
        f"{html.escape(text)}</li>"
        for name, text in sorted(HISTOGRAMS.items(), key=lambda item: _latency_rank(item[0]))
    )
    workload = ""
    if stats.groups:
        workload = (
            "<h3>By KV cache, turn and LoRA adapter (milliseconds)</h3>"
            f"{_html_table(workload_table(stats), _READABLE_WORKLOAD_HEADERS)}"
        )
    return (
        f'<section id="{SECTION_ID}" style="font-family:sans-serif;margin:2em;">'
        f"<style>#{SECTION_ID} td,#{SECTION_ID} th{{padding:2px 10px;"
        "text-align:right;border-bottom:1px solid #ccc}</style>"
        "<h2>Token metrics (milliseconds)</h2>"
        f"{_html_table(latency_table(stats, label), _READABLE_LATENCY_HEADERS)}"
        "<h3>Throughput</h3>"
        f"{_html_table(throughput_table(stats), _READABLE_THROUGHPUT_HEADERS)}"
        f"{workload}"
        f"<h3>Definitions</h3><ul>{definitions}</ul>"
        "</section>"
    )


def add_to_html_report(path: Path, stats: RunStats, label: str) -> None:
    """Insert :func:`report_section` into an HTML file, before ``</body>`` (appended without one)."""
    text = path.read_text(encoding="utf-8")
    section = report_section(stats, label)
    marker = text.rfind("</body>")
    text = text[:marker] + section + text[marker:] if marker >= 0 else text + section
    path.write_text(text, encoding="utf-8")
