"""Server faults during a Locust run: every request counted once, as what it was, in every output.

Locust runs as a real process (``locust -f locustfiles/burst.py --headless``) against
:mod:`faulty_triton`, which plays each fault of its plan in turn. Locust sends one fixed prompt, so the
records cannot name their fault; the tally can: the failures of each kind must match, one for one, what
the server did.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_triton import FAULTS, FaultyTriton  # noqa: E402

from trtclient import exit_codes
from trtclient.loadtest.records import RequestRecord, read_records

pytestmark = pytest.mark.locust

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = ROOT / "locustfiles"
REPEATS = 2
READ_TIMEOUT_S = 0.5
REQUEST_ROW = "/v2/models/ensemble/generate_stream"


@pytest.fixture()
def server() -> Iterator[FaultyTriton]:
    with FaultyTriton(plan=list(FAULTS), huge_bytes=1 << 20) as fake:
        yield fake


def run_locust(scenario: str, host: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILES / scenario),
            "--headless",
            "--host",
            host,
            "--max-tokens",
            "4",
            "--request-timeout",
            str(READ_TIMEOUT_S),
            "--records",
            str(out / "records.jsonl"),
            "--csv",
            str(out / "run"),
            "--json-file",
            str(out / "stats"),
            "--only-summary",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def expected_failures(served: Counter[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for name, times in served.items():
        kind = FAULTS[name].kind
        if kind is not None:
            out[kind] += times
    return out


def locust_json_stats(path: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Locust's ``--json-file`` statistics by (request type, name)."""
    return {(entry["method"], entry["name"]): entry for entry in json.loads(path.read_text())}


def locust_request_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as file:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}


def check_records(records: list[RequestRecord], served: Counter[str]) -> tuple[int, int]:
    total = sum(served.values())
    assert sorted(r.index for r in records) == list(range(total))
    failed = Counter(r.error_kind for r in records if r.status == "failed")
    assert failed == expected_failures(served)
    ok = sum(1 for r in records if r.status == "ok")
    assert ok == sum(times for name, times in served.items() if FAULTS[name].kind is None)
    assert ok + sum(failed.values()) == total
    return ok, sum(failed.values())


def test_burst_scenario_counts_every_fault_once_in_every_output(server: FaultyTriton, tmp_path: Path) -> None:
    total = len(FAULTS) * REPEATS
    result = run_locust("burst.py", server.url, tmp_path, "--burst-size", str(total))
    assert "Traceback" not in result.stderr
    assert result.returncode == exit_codes.FAILURES  # failures beyond --max-failures (default 0)
    assert server.served == Counter({name: REPEATS for name in FAULTS})
    ok, failed = check_records(list(read_records(tmp_path / "records.jsonl")), server.served)

    assert f"test totals: ok={ok} failed={failed} cancelled=0" in result.stderr
    stats = locust_json_stats(tmp_path / "stats.json")
    request_row = stats[("POST", REQUEST_ROW)]
    assert (request_row["num_requests"], request_row["num_failures"]) == (total, failed)
    # Token metrics come from successful requests only.
    with (tmp_path / "run_tokens.csv").open(newline="") as file:
        tokens = {row["Metric"]: row for row in csv.DictReader(file)}
    assert int(tokens["TTFT"]["Count"]) == ok
    assert int(tokens["E2E"]["Count"]) == ok
    assert stats[("TTFT", "ensemble")]["num_requests"] == ok

    # Locust's own CSV files, which users read after the run, hold the final counts too.
    rows = locust_request_rows(tmp_path / "run_stats.csv")
    row = rows[("POST", REQUEST_ROW)]
    assert (int(row["Request Count"]), int(row["Failure Count"])) == (total, failed)
    with (tmp_path / "run_failures.csv").open(newline="") as file:
        failures = list(csv.DictReader(file))
    by_kind: Counter[str] = Counter()
    for entry in failures:
        kind = entry["Error"].split("RequestFailed(", 1)[-1].strip("'\"").split(":", 1)[0]
        by_kind[kind] += int(entry["Occurrences"])
    assert by_kind == expected_failures(server.served)


def test_open_loop_scenario_with_connections_refused_mid_run(tmp_path: Path) -> None:
    """The server stops accepting connections after some requests, then accepts them again; ``-t`` ends
    the run, cancelling what is in flight. Every outcome is in the records, once, and the outputs agree."""
    records_path = tmp_path / "records.jsonl"
    with FaultyTriton(token_delay_s=0.02) as fake:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILES / "rate.py"),
                "--headless",
                "--host",
                fake.url,
                "--rate",
                "20",
                "--arrival",
                "constant",
                "-u",
                "16",
                "-t",
                "4s",
                "--max-tokens",
                "4",
                "--records",
                str(records_path),
                "--json-file",
                str(tmp_path / "stats"),
                "--only-summary",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            wait_for_records(records_path, 10)
            fake.refuse_connections()
            wait_for_records(records_path, 25)
            fake.accept_connections()
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert "Traceback" not in stderr
    records = list(read_records(records_path))
    assert sorted(r.index for r in records) == list(range(len(records)))
    by_status = Counter(r.status for r in records)
    kinds = Counter(r.error_kind for r in records if r.status == "failed")
    assert set(kinds) <= {"connect", "disconnect"}
    assert kinds["connect"] > 0
    assert any(r.status == "ok" and r.index > 30 for r in records)
    totals = (
        f"test totals: ok={by_status['ok']} failed={by_status['failed']} cancelled={by_status['cancelled']}"
    )
    assert totals in stderr
    stats = locust_json_stats(tmp_path / "stats.json")
    row = stats[("POST", REQUEST_ROW)]
    assert (row["num_requests"], row["num_failures"]) == (
        by_status["ok"] + by_status["failed"],
        by_status["failed"],
    )
    assert stats[("TTFT", "ensemble")]["num_requests"] == by_status["ok"]


def wait_for_records(path: Path, count: int, timeout: float = 30.0) -> None:
    """Wait until the run has written ``count`` records (polling the file it appends to)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.read_text().count("\n") >= count:
                return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} records in {path} after {timeout} s")
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("budget", "code"), [("100%", exit_codes.OK), ("lots", exit_codes.USAGE)], ids=["tolerated", "bad value"]
)
def test_max_failures_gates_the_locust_exit_code(
    server: FaultyTriton, tmp_path: Path, budget: str, code: int
) -> None:
    total = len(FAULTS)
    result = run_locust(
        "burst.py", server.url, tmp_path, "--burst-size", str(total), "--max-failures", budget
    )
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if code == exit_codes.USAGE:
        assert "--max-failures expects a number of requests" in result.stderr
        assert not server.served  # refused before any load
