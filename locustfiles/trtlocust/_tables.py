"""The tables of a run's token statistics: totals line, latency and throughput rows, CSV, console and
the section added to Locust's HTML report. No locust or gevent import."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from pathlib import Path

from trtlocust._stats import HISTOGRAMS, LOCUST_ROWS, RunStats

__all__ = [
    "LATENCY_HEADERS",
    "SECTION_ID",
    "THROUGHPUT_HEADERS",
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


def latency_table(stats: RunStats, label: str) -> list[dict[str, str]]:
    """The latency rows as strings, milliseconds (keys: metric, name and :data:`LATENCY_COLUMNS`)."""
    rows = []
    for row in stats.latency_rows():
        out = {"metric": row.metric.upper() if row.metric in LOCUST_ROWS else row.metric, "name": label}
        out.update({k: str(int(v)) if k == "count" else _fmt(v) for k, v in row.cells().items()})
        rows.append(out)
    return rows


def throughput_table(stats: RunStats, now_s: float | None = None) -> list[dict[str, str]]:
    """The throughput figures as strings (keys: name, value, unit); see :meth:`RunStats.throughput`."""
    return [
        {
            "name": name,
            "value": str(int(value)) if unit in ("requests", "tokens") else _fmt(value),
            "unit": unit,
        }
        for name, value, unit in stats.throughput(now_s)
    ]


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


def write_csv(stats: RunStats, prefix: str, label: str) -> tuple[Path, Path]:
    """Write ``PREFIX_tokens.csv`` (latency, milliseconds) and ``PREFIX_throughput.csv``."""
    latency_path = Path(f"{prefix}_tokens.csv")
    throughput_path = Path(f"{prefix}_throughput.csv")
    latency_path.parent.mkdir(parents=True, exist_ok=True)
    latency_path.write_text(csv_text(latency_table(stats, label), LATENCY_HEADERS), encoding="utf-8")
    throughput_path.write_text(csv_text(throughput_table(stats), THROUGHPUT_HEADERS), encoding="utf-8")
    return latency_path, throughput_path


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
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>" for name, text in HISTOGRAMS.items()
    )
    return (
        f'<section id="{SECTION_ID}" style="font-family:sans-serif;margin:2em;">'
        f"<style>#{SECTION_ID} td,#{SECTION_ID} th{{padding:2px 10px;"
        "text-align:right;border-bottom:1px solid #ccc}</style>"
        "<h2>Token metrics (milliseconds)</h2>"
        f"{_html_table(latency_table(stats, label), LATENCY_HEADERS)}"
        "<h3>Throughput</h3>"
        f"{_html_table(throughput_table(stats), THROUGHPUT_HEADERS)}"
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
