"""What a test leaves behind: totals on the console, token CSVs next to ``--csv``, a section in the
``--html`` report, and, while it runs, two web-UI tabs and a live chart (``/trtclient/chart``).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import locust.runners
import locust.stats
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, STATE_STOPPING

from trtlocust._chart import CHART_PAGE
from trtlocust._process import PROCESS
from trtlocust._stats import LOCUST_ROWS, RunStats
from trtlocust._tables import (
    LATENCY_HEADERS,
    SECTION_ID,
    THROUGHPUT_HEADERS,
    WORKLOAD_HEADERS,
    add_to_html_report,
    csv_text,
    latency_table,
    summary_lines,
    throughput_table,
    totals_line,
    workload_table,
    write_csv,
)
from trtlocust._timeline import INTERVAL_S, Timeline

__all__ = ["add_html_section", "extend_web_ui", "write_outputs"]

log = logging.getLogger("trtclient.locust")


def write_outputs(environment: Environment) -> None:
    PROCESS.accountant.flush()
    if PROCESS.role == "worker":
        everything = RunStats()
        everything.merge(PROCESS.reported.to_wire())
        everything.merge(PROCESS.pending.to_wire())
        log.info("worker totals: %s", totals_line(everything))
        return
    options = environment.parsed_options
    stats = PROCESS.totals
    log.info("test totals: %s", totals_line(stats))
    if PROCESS.lost_workers:
        log.warning(
            "lost workers: %d (%s); requests they had in flight at their last reports: %d",
            len(PROCESS.lost_workers),
            ", ".join(PROCESS.lost_workers),
            sum(PROCESS.lost_workers.values()),
        )
    console = logging.getLogger("locust.stats_logger")
    for line in summary_lines(stats, PROCESS.label):
        console.info(line)
    console.info("")
    if options is not None and options.csv_prefix:
        write_csv(stats, options.csv_prefix, PROCESS.label)
        # Locust (2.47) rewrites PREFIX_stats.csv and its siblings once a second and not at the end,
        # so a test that ends between two writes would leave them stale. One more tick, with the
        # statistics final now, makes the files complete.
        gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC + 0.1)
    add_html_section(environment)


def add_html_section(environment: Environment) -> None:
    options = environment.parsed_options
    if PROCESS.role == "worker" or options is None or not options.html_file:
        return
    path = Path(options.html_file)
    try:
        if path.is_file() and SECTION_ID not in path.read_text(encoding="utf-8"):
            add_to_html_report(path, PROCESS.totals, PROCESS.label)
    except OSError as exc:
        log.warning("could not add the token metrics to %s: %s", path, exc)


# ---------------------------------------------------------------- web UI


_LATENCY_TAB = "trtclient-latency"
_THROUGHPUT_TAB = "trtclient-throughput"
_WORKLOAD_TAB = "trtclient-workload"


def _statistics_rank(row: Any) -> tuple[int, int]:
    """Locust lists its statistics rows by name, then request type, so the token rows of one model
    come as E2E, ITL, TPOT, TTFT. In reading order instead: the request rows, then TTFT, ITL, TPOT,
    E2E, then the aggregated row (a stable sort keeps the rest as Locust had them)."""
    method = str(row.get("method") or "").lower() if isinstance(row, dict) else ""
    if method in LOCUST_ROWS:
        return (1, LOCUST_ROWS.index(method))
    if isinstance(row, dict) and row.get("name") == "Aggregated" and not method:
        return (2, 0)
    return (0, 0)


#: Runner states in which the live chart takes points.
_SAMPLED_STATES = (STATE_SPAWNING, STATE_RUNNING, STATE_STOPPING)


def _sample_timeline(environment: Environment, timeline: Timeline) -> None:
    """Every few seconds while a test runs: one point of the live chart from the merged statistics."""
    while True:
        gevent.sleep(timeline.interval_s)
        runner = environment.runner
        if runner is not None and runner.state in _SAMPLED_STATES:
            timeline.sample(PROCESS.totals, time.time())


def extend_web_ui(environment: Environment) -> None:
    """Two tabs (token latency, token throughput), their data in /stats/requests, CSV downloads, and
    a live chart of TTFT p50/p95 and output tokens/s (``/trtclient/chart``, fed by
    ``/trtclient/timeline.json``)."""
    from flask import Response, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    app = web_ui.app
    latency_titles = {
        "title": "Metric",
        **{k: v for k, v in LATENCY_HEADERS.items() if k != "metric"},
        **{k: f"{v} (ms)" for k, v in LATENCY_HEADERS.items() if k not in ("metric", "name", "count")},
    }
    throughput_titles = {"title": "Figure", "value": "Value", "unit": "Unit"}
    workload_titles = {
        "title": "Split",
        **{k: v + (" (ms)" if k.startswith(("ttft", "e2e")) else "") for k, v in WORKLOAD_HEADERS.items()},
    }
    del workload_titles["split"]
    web_ui.template_args["extended_tabs"] = [
        {"title": "Token latency", "key": _LATENCY_TAB},
        {"title": "Token throughput", "key": _THROUGHPUT_TAB},
        {"title": "By KV cache / turn / adapter", "key": _WORKLOAD_TAB},
    ]
    web_ui.template_args["extended_tables"] = [
        {"key": _LATENCY_TAB, "structure": [{"key": k, "title": t} for k, t in latency_titles.items()]},
        {
            "key": _THROUGHPUT_TAB,
            "structure": [{"key": k, "title": t} for k, t in throughput_titles.items()],
        },
        {"key": _WORKLOAD_TAB, "structure": [{"key": k, "title": t} for k, t in workload_titles.items()]},
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./trtclient/chart", "title": "Live token chart (TTFT p50/p95, output tokens/s)"},
        {"href": "./trtclient/tokens.csv", "title": "Download token latency CSV"},
        {"href": "./trtclient/throughput.csv", "title": "Download token throughput CSV"},
        {"href": "./trtclient/workload.csv", "title": "Download KV cache / turn / adapter CSV"},
    ]

    @app.after_request
    def _add_token_stats(response: Response) -> Response:
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            stats = PROCESS.totals
            payload = response.get_json() or {}
            # The web UI sorts a table's rows by their "name", which for the throughput figures
            # would undo their reading order: those rows carry their readable title only.
            throughput = [
                {"title": row["title"], "value": row["value"], "unit": row["unit"]}
                for row in throughput_table(stats, time.time())
            ]
            payload["extended_stats"] = [
                {"key": _LATENCY_TAB, "data": latency_table(stats, PROCESS.label)},
                {"key": _THROUGHPUT_TAB, "data": throughput},
                {"key": _WORKLOAD_TAB, "data": workload_table(stats)},
            ]
            if isinstance(payload.get("stats"), list):
                payload["stats"] = sorted(payload["stats"], key=_statistics_rank)
            response.set_data(json.dumps(payload))
        return response

    # A master hears from each worker once per report interval (3 s): points as far apart, so that a
    # point does not come out empty merely because no report landed in it.
    interval_s = INTERVAL_S
    if PROCESS.role == "master":
        interval_s = max(interval_s, math.ceil(locust.runners.WORKER_REPORT_INTERVAL))
    timeline = Timeline(interval_s=interval_s)
    gevent.spawn(_sample_timeline, environment, timeline)

    @app.route("/trtclient/timeline.json")
    @web_ui.auth_required_if_enabled
    def _timeline_json() -> Response:
        return Response(json.dumps(timeline.series(PROCESS.totals)), mimetype="application/json")

    @app.route("/trtclient/chart")
    @web_ui.auth_required_if_enabled
    def _chart() -> Response:
        return Response(CHART_PAGE, mimetype="text/html")

    @app.route("/trtclient/tokens.csv")
    @web_ui.auth_required_if_enabled
    def _tokens_csv() -> Response:
        text = csv_text(latency_table(PROCESS.totals, PROCESS.label), LATENCY_HEADERS)
        return Response(text, mimetype="text/csv")

    @app.route("/trtclient/workload.csv")
    @web_ui.auth_required_if_enabled
    def _workload_csv() -> Response:
        return Response(csv_text(workload_table(PROCESS.totals), WORKLOAD_HEADERS), mimetype="text/csv")

    @app.route("/trtclient/throughput.csv")
    @web_ui.auth_required_if_enabled
    def _throughput_csv() -> Response:
        return Response(csv_text(throughput_table(PROCESS.totals), THROUGHPUT_HEADERS), mimetype="text/csv")
