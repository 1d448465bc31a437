"""Locust's own report and the token tables count the same requests.

A real ``locust -f locustfiles/burst.py --headless`` process runs one burst against
:mod:`faulty_triton`, whose plan makes some requests succeed and others fail in different ways, with
``--html`` and ``--csv``. Locust's figures (the HTML report's statistics and failures, the CSV's request
row) and ours (the token CSV and throughput CSV, the token section of the same HTML page, the console
totals) must give the same numbers of requests, failures and successes.
"""

from __future__ import annotations

import csv
import html as html_lib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faulty_triton import FaultyTriton

from trtclient import exit_codes

pytestmark = [pytest.mark.integration, pytest.mark.locust]

ROOT = Path(__file__).resolve().parents[2]
REQUEST_ROW = ("POST", "/v2/models/ensemble/generate_stream")
#: Four successes and four failures of three kinds, twice over.
PLAN = ["ok", "error_500_json", "ok", "error_mid_stream", "ok", "reset_mid_stream", "ok", "error_503"] * 2
OK = PLAN.count("ok")
FAILED = len(PLAN) - OK


@pytest.fixture()
def server() -> Iterator[FaultyTriton]:
    with FaultyTriton(plan=PLAN) as fake:
        yield fake


def csv_rows(path: Path, *key: str) -> dict[tuple[str, ...], dict[str, str]]:
    with path.open(newline="") as file:
        return {tuple(row[k] for k in key): row for row in csv.DictReader(file)}


def template_args(page: str) -> dict[str, Any]:
    """The statistics Locust embeds in its HTML report (``window.templateArgs = {...}``)."""
    start = page.index("window.templateArgs = ") + len("window.templateArgs = ")
    value, _ = json.JSONDecoder().raw_decode(page[start:])
    assert isinstance(value, dict)
    return value


def token_section_figures(page: str) -> dict[str, str]:
    """Figure -> value from the throughput table of our section of the HTML report."""
    section = page[page.index('id="trtclient-token-metrics"') :]
    cells = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td></tr>", section)
    return {html_lib.unescape(name): value for name, value in cells}


def test_locust_html_and_csv_counts_agree_with_the_token_tables(server: FaultyTriton, tmp_path: Path) -> None:
    prefix, report = tmp_path / "run", tmp_path / "report.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "locustfiles" / "burst.py"),
            "--headless",
            "--host",
            server.url,
            "--burst-size",
            str(len(PLAN)),
            "--max-tokens",
            "4",
            "--csv",
            str(prefix),
            "--html",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == exit_codes.FAILURES, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert sum(server.served.values()) == len(PLAN)

    # Locust's HTML report.
    page = report.read_text()
    args: dict[str, Any] = template_args(page)
    stats = {(s["method"], s["name"]): s for s in args["requests_statistics"]}
    row = stats[REQUEST_ROW]
    assert (row["num_requests"], row["num_failures"]) == (len(PLAN), FAILED)
    failures = args["failures_statistics"]
    assert sum(int(f["occurrences"]) for f in failures) == FAILED
    assert stats[("TTFT", "ensemble")]["num_requests"] == OK

    # Locust's CSV.
    csv_row = csv_rows(Path(f"{prefix}_stats.csv"), "Type", "Name")[REQUEST_ROW]
    assert (int(csv_row["Request Count"]), int(csv_row["Failure Count"])) == (len(PLAN), FAILED)

    # Our tables: the token CSV counts successful requests, the throughput CSV and the HTML section
    # successes and failures, the console's totals line the same.
    tokens = csv_rows(Path(f"{prefix}_tokens.csv"), "Metric")
    assert int(tokens[("TTFT",)]["Count"]) == int(tokens[("E2E",)]["Count"]) == OK
    throughput = csv_rows(Path(f"{prefix}_throughput.csv"), "Name")
    figures = {name: float(r["Value"]) for (name,), r in throughput.items()}
    assert (figures["requests_ok"], figures["requests_failed"]) == (OK, FAILED)
    section = token_section_figures(page)
    assert (int(section["Requests succeeded"]), int(section["Requests failed"])) == (OK, FAILED)
    assert f"test totals: ok={OK} failed={FAILED} cancelled=0" in result.stderr
