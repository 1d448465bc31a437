"""The load generator stopped by a signal mid-run: nothing completed is lost, nothing keeps running.

``trtclient bench`` runs as a real process with its embedded Triton (Orin timing, so streams are in flight
when the signal lands). The tests wait for observable progress (records in the JSONL file, the server's
processes), never for a fixed time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest
from processes import SERVER_PROCESS_NAMES, alive, server_processes, wait_for  # noqa: E402

from trtclient.loadtest.records import read_records
from trtclient.server.launcher import SHM_DIR

pytestmark = pytest.mark.integration


def record_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.endswith("}"))
    except FileNotFoundError:
        return 0


def start_bench(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    records, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trtclient.cli",
            "bench",
            "--profile",
            "orin-int4",
            "--rate",
            "8",
            "--arrival",
            "constant",
            "--duration",
            "60s",
            "--records",
            str(records),
            "--json",
            str(summary),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, records, summary


def stop_and_collect(process: subprocess.Popen[str], sig: int) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_keeps_every_record_prints_the_partial_report_and_leaves_nothing(
    tmp_path: Path, sig: int
) -> None:
    process, records_path, summary_path = start_bench(tmp_path)
    bench = psutil.Process(process.pid)
    try:
        wait_for(lambda: record_lines(records_path) >= 6, "six completed requests")
        children = server_processes(bench)
        assert {p.name() for p in children} == SERVER_PROCESS_NAMES
    except BaseException:
        process.kill()
        process.communicate()
        raise
    stdout, stderr = stop_and_collect(process, sig)

    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "[interrupted: partial results]" in stdout
    assert alive(children) == []
    assert list(SHM_DIR.glob(f"trtclient_{process.pid}_*")) == []

    records = list(read_records(records_path))
    indexes = [r.index for r in records]
    assert len(indexes) == len(set(indexes))
    assert sorted(indexes) == list(range(len(records)))
    assert records_path.read_text().endswith("\n")
    by_status = Counter(r.status for r in records)
    assert by_status["ok"] >= 6
    assert set(by_status) <= {"ok", "cancelled"}
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True
    requests = summary["requests"]
    assert (requests["sent"], requests["ok"], requests["failed"], requests["cancelled"]) == (
        len(records),
        by_status["ok"],
        by_status["failed"],
        by_status["cancelled"],
    )
    ok = requests["ok"]
    assert f"{len(records)} sent: {ok} ok, 0 failed, {by_status['cancelled']} cancelled" in stdout
    assert summary["e2e_ms"]["count"] == ok


def test_sigint_while_the_server_starts_stops_it_and_says_so_in_one_line(tmp_path: Path) -> None:
    process, records_path, _ = start_bench(tmp_path)
    bench = psutil.Process(process.pid)
    try:
        wait_for(lambda: bool(server_processes(bench)), "tritonserver to be launched")
        children = server_processes(bench)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    stdout, stderr = stop_and_collect(process, signal.SIGINT)

    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "trtclient: error: interrupted"
    assert alive(children) == []
    assert list(SHM_DIR.glob(f"trtclient_{process.pid}_*")) == []
    assert record_lines(records_path) == 0


def test_sigkill_of_the_load_generator_still_stops_its_server(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup; the launcher asks Linux to SIGTERM the server when its parent dies. The
    JSONL keeps every request that ended before the kill."""
    process, records_path, _ = start_bench(tmp_path)
    bench = psutil.Process(process.pid)
    try:
        wait_for(lambda: record_lines(records_path) >= 3, "three completed requests")
        children = server_processes(bench)
        assert {p.name() for p in children} == SERVER_PROCESS_NAMES
    finally:
        process.kill()
        process.communicate()
    wait_for(lambda: alive(children) == [], "the orphaned server to stop", timeout=30)
    records = list(read_records(records_path))
    assert len(records) >= 3
    assert len({r.index for r in records}) == len(records)
