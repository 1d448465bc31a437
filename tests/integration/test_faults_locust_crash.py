"""Locust against the real embedded Triton when things break: the server killed and restarted mid-run,
and Locust itself stopped by SIGINT or SIGTERM.

Locust runs as a real process (``locust -f locustfiles/rate.py --headless``). The tests wait for
observable progress (records in the JSONL file, the server's processes), never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest
from processes import SERVER_PROCESS_NAMES, alive, server_processes, wait_for  # noqa: E402
from server_crash import CrashAndRestart  # noqa: E402

from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.server.launcher import SHM_DIR, EmbeddedTriton

pytestmark = [pytest.mark.integration, pytest.mark.locust]

ROOT = Path(__file__).resolve().parents[2]
REQUEST_ROW = ("POST", "/v2/models/ensemble/generate_stream")
TOTALS = re.compile(r"test totals: ok=(\d+) failed=(\d+) cancelled=(\d+)")
SUMMARY = re.compile(r"requests ok (\d+), failed (\d+), cancelled (\d+)")


def record_lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


def locust(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "locustfiles" / "rate.py"),
            "--headless",
            "--rate",
            "8",
            "--arrival",
            "constant",
            "-u",
            "16",
            "--max-tokens",
            "8",
            "--records",
            str(tmp_path / "records.jsonl"),
            "--json-file",
            str(tmp_path / "stats"),
            "--only-summary",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(process: subprocess.Popen[str], sig: int | None = None, timeout: float = 90.0) -> str:
    """Signal the process (if asked), wait for it, return what it printed (stdout, then output)."""
    if sig is not None:
        process.send_signal(sig)
    try:
        stdout, output = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return stdout + output


def check_outputs_agree(records: list[RequestRecord], output: str, stats_path: Path) -> Counter[str]:
    """One record per request, and the printed totals, the summary and Locust's statistics say the same."""
    assert sorted(r.index for r in records) == list(range(len(records)))
    by_status: Counter[str] = Counter(r.status for r in records)
    counts = (str(by_status["ok"]), str(by_status["failed"]), str(by_status["cancelled"]))
    totals = TOTALS.search(output)
    assert totals is not None, output[-3000:]
    assert totals.groups() == counts
    summary = SUMMARY.search(output)
    assert summary is not None
    assert summary.groups() == counts
    stats = {(e["method"], e["name"]): e for e in json.loads(stats_path.read_text())}
    row = stats[REQUEST_ROW]
    assert (row["num_requests"], row["num_failures"]) == (
        by_status["ok"] + by_status["failed"],
        by_status["failed"],
    )
    assert stats[("TTFT", "ensemble")]["num_requests"] == by_status["ok"]
    return by_status


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_locust_stopped_by_a_signal_keeps_every_record_and_stops_its_server(tmp_path: Path, sig: int) -> None:
    process = locust(tmp_path, "-t", "120s")  # no --host: Locust starts the embedded Triton
    parent = psutil.Process(process.pid)
    try:
        wait_for(lambda: record_lines(tmp_path / "records.jsonl") >= 6, "six completed requests", 90)
        children = server_processes(parent)
        assert {p.name() for p in children} == SERVER_PROCESS_NAMES
    except BaseException:
        finish(process, signal.SIGKILL)
        raise
    output = finish(process, sig)

    assert "Traceback" not in output
    assert alive(children) == []
    assert list(SHM_DIR.glob(f"trtclient_{process.pid}_*")) == []
    records = list(read_records(tmp_path / "records.jsonl"))
    by_status = check_outputs_agree(records, output, tmp_path / "stats.json")
    assert by_status["ok"] >= 6
    assert by_status["failed"] == 0


def test_locust_through_a_server_killed_and_restarted(tmp_path: Path) -> None:
    server = EmbeddedTriton(profile="orin-int4")
    server.start()
    crash = CrashAndRestart(server)
    process = locust(tmp_path, "--host", server.url, "-t", "9s")
    try:
        wait_for(lambda: record_lines(tmp_path / "records.jsonl") >= 10, "ten completed requests", 60)
        crash.crash_and_restart()
        crash.wait()
        assert crash.error is None, crash.error
        output = finish(process)
    finally:
        if process.poll() is None:
            finish(process, signal.SIGKILL)
        crash.stop()

    assert "Traceback" not in output
    records = list(read_records(tmp_path / "records.jsonl"))
    by_status = check_outputs_agree(records, output, tmp_path / "stats.json")
    kinds = Counter(r.error_kind for r in records if r.status == "failed")
    assert set(kinds) <= {"disconnect", "connect"}
    assert kinds["disconnect"] > 0 and kinds["connect"] > 0
    assert all(r.status == "ok" for r in records if r.index < 5)
    last_failure = max(r.index for r in records if r.status == "failed")
    assert any(r.status == "ok" for r in records if r.index > last_failure)
    assert by_status["ok"] > 10


def busy_locust(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "fakes" / "busy_locustfile.py")]
        + ["--headless", "-u", "1", "-r", "1", "-t", "120s", "--only-summary"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "BUSY_MARKER": str(tmp_path / "spinning"), **env},
    )


def test_ctrl_c_while_a_user_greenlet_runs_prints_no_traceback(tmp_path: Path) -> None:
    """SIGINT lands in the user's greenlet almost every time here (see the fake), and must still be a
    clean stop: Locust's own shutdown, no greenlet traceback, and the shared exit code of an
    interrupted run (130, as bench's)."""
    marker = tmp_path / "spinning"
    process = busy_locust(tmp_path)
    try:
        wait_for(marker.exists, "the busy user to start", 60)
    except BaseException:
        finish(process, signal.SIGKILL)
        raise
    output = finish(process, signal.SIGINT)

    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output
    assert "Shutting down (exit code 130)" in output
    assert process.returncode == 130


def test_ctrl_c_pressed_again_while_stopping_warns_then_quits(tmp_path: Path) -> None:
    """The second Ctrl-C only says what is going on; the third quits at once with status 130."""
    stopping = tmp_path / "spinning.stopping"
    process = busy_locust(tmp_path, BUSY_HOLD_STOP="1")
    assert process.stderr is not None
    try:
        wait_for((tmp_path / "spinning").exists, "the busy user to start", 60)
        process.send_signal(signal.SIGINT)
        wait_for(stopping.exists, "the user to start stopping", 60)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:  # Locust logs to stderr
            if "Ctrl-C again to quit at once" in line:
                break
        else:
            raise AssertionError("no warning after the second Ctrl-C")
    except BaseException:
        finish(process, signal.SIGKILL)
        raise
    output = finish(process, signal.SIGINT)

    assert "quitting at once" in output
    assert "Traceback" not in output
    assert process.returncode == 130
