"""Server faults during a ``trtclient bench`` run: every request ends exactly once, as what it was.

The server is :mod:`faulty_triton` (``tests/fakes``), a loopback stand-in that plays, for each request, the
fault its prompt names — resets, stalls, truncated events, error events inside a 200 stream — which a real
Triton produces only by accident. The dataset names one fault per line, so each record can be checked
against what the server did to that very request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_triton import FAULTS, FaultyTriton, fault_prompt  # noqa: E402

from trtclient import exit_codes
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.loadtest.schedule import Concurrency, Rate, Stop
from trtclient.loadtest.workload import JsonlPrompts, Prompt

READ_TIMEOUT_S = 0.5
REPEATS = 2


@pytest.fixture()
def server() -> Iterator[FaultyTriton]:
    with FaultyTriton(huge_bytes=1 << 20) as fake:
        yield fake


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """Every fault, ``REPEATS`` times; each line's id names its fault."""
    path = tmp_path / "faults.jsonl"
    lines = [
        json.dumps({"id": f"{name}#{n}", "text_input": fault_prompt(name), "max_tokens": 4})
        for n in range(REPEATS)
        for name in FAULTS
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def shown(message: str | None) -> str:
    """A message as the failure reasons show it: whitespace folded, at most 200 characters."""
    text = " ".join((message or "").split())
    return text if len(text) <= 200 else text[:197] + "..."


def fault_of(record: RequestRecord) -> str:
    return record.prompt_id.split("#")[0]


def check_each_record_is_what_the_server_did(records: list[RequestRecord], expected: int) -> None:
    """One record per request, and its outcome is the one its fault calls for."""
    assert sorted(r.index for r in records) == list(range(expected))
    for r in records:
        want = FAULTS[fault_of(r)].kind
        if want is None:
            assert (r.status, r.error_kind) == ("ok", None), r
        else:
            assert (r.status, r.error_kind) == ("failed", want), r
            assert r.error_message


def check_latencies_leave_failures_out(records: list[RequestRecord], summary: dict[str, object]) -> None:
    """Latency figures come from the successful requests only; failures are counted beside them."""
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status == "failed"]
    requests = summary["requests"]
    assert requests == {
        "sent": len(records),
        "ok": len(ok),
        "failed": len(failed),
        "cancelled": 0,
        "warmup": 0,
    }
    assert summary["failures"] == dict(Counter(r.error_kind for r in failed))
    for name, metric in (("e2e", m.e2e_ns), ("ttft", m.ttft_ns)):
        block = summary[f"{name}_ms"]
        assert isinstance(block, dict)
        values = [metric(r) for r in ok]
        assert block["count"] == len(ok)
        assert block["max"] == pytest.approx(max(v for v in values if v is not None) / 1e6)
    # Failed requests that did receive tokens (error event, reset, truncation) are still left out.
    assert any(r.event_ns for r in failed)


def test_bench_cli_counts_every_fault_once_and_never_as_a_success(
    server: FaultyTriton, dataset: Path, tmp_path: Path
) -> None:
    total = len(FAULTS) * REPEATS
    records_path, json_path, csv_path = tmp_path / "r.jsonl", tmp_path / "s.json", tmp_path / "r.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtclient.cli",
            "bench",
            "--url",
            server.url,
            "--metrics-url",
            server.url + "/metrics",
            "--dataset",
            str(dataset),
            "--burst",
            str(total),
            "--timeout",
            str(READ_TIMEOUT_S),
            "--records",
            str(records_path),
            "--json",
            str(json_path),
            "--csv",
            str(csv_path),
            "--max-failures",
            str(sum(1 for f in FAULTS.values() if f.kind) * REPEATS),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = list(read_records(records_path))
    check_each_record_is_what_the_server_did(records, total)
    summary = json.loads(json_path.read_text())
    check_latencies_leave_failures_out(records, summary)
    assert server.served == Counter({name: REPEATS for name in FAULTS})
    failed = sum(1 for f in FAULTS.values() if f.kind) * REPEATS
    assert f"{total} sent: {total - failed} ok, {failed} failed (" in result.stdout
    for kind in {f.kind for f in FAULTS.values() if f.kind}:
        assert f"{kind} {REPEATS * sum(1 for f in FAULTS.values() if f.kind == kind)}" in result.stdout
    # Each kind's reasons are the records' own messages, counted.
    reasons = summary["failure_reasons"]
    assert {kind: reason["count"] for kind, reason in reasons.items()} == summary["failures"]
    for kind, reason in reasons.items():
        texts = Counter(shown(r.error_message) for r in records if r.error_kind == kind)
        assert [(m["message"], m["count"]) for m in reason["messages"]] == sorted(
            texts.items(), key=lambda item: (-item[1], item[0])
        )[:3]
        assert f"failed {kind} ({reason['count']}): " in result.stdout
    csv_rows = csv_path.read_text().splitlines()[1:]
    assert len(csv_rows) == total
    assert Counter(row.split(",")[2] for row in csv_rows) == Counter(r.status for r in records)


def test_a_run_where_every_request_fails_exits_nonzero_and_reports_no_latency(
    server: FaultyTriton, tmp_path: Path
) -> None:
    json_path = tmp_path / "s.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtclient.cli",
            "bench",
            "--url",
            server.url,
            "--metrics-url",
            server.url + "/metrics",
            "--prompt",
            fault_prompt("error_mid_stream"),
            "--burst",
            "5",
            "--json",
            str(json_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == exit_codes.FAILURES
    assert "5 sent: 0 ok, 5 failed (stream_error 5)" in result.stdout
    summary = json.loads(json_path.read_text())
    (message,) = summary["failure_reasons"]["stream_error"]["messages"]
    assert message["count"] == 5 and message["message"] != "(no message)"
    assert f"failed stream_error (5): {message['message']!r} x5" in result.stdout
    latency_rows = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert not latency_rows & {"TTFT", "ITL", "TPOT", "E2E", "time"}
    summary = json.loads(json_path.read_text())
    assert summary["requests_per_s"] == 0.0
    assert summary["output_tokens_per_s"] == 0.0
    assert summary["ttft_ms"] is None and summary["e2e_ms"] is None and summary["itl_ms"] is None


async def test_closed_loop_run_records_every_fault_once(server: FaultyTriton, dataset: Path) -> None:
    total = len(FAULTS) * REPEATS
    spec = BenchSpec(
        shape=Concurrency(4),
        stop=Stop(requests=total),
        workload=JsonlPrompts(dataset, 4),
        read_timeout_s=READ_TIMEOUT_S,
        scrape_metrics=False,
    )
    outcome = await run_bench(spec, server.url)
    records = outcome.result.records
    check_each_record_is_what_the_server_did(records, total)
    counts = outcome.report.metrics.counts
    assert counts.ok + counts.failed + counts.cancelled == counts.sent == total
    assert counts.cancelled == 0
    assert outcome.report.metrics.e2e is not None
    assert outcome.report.metrics.e2e.count == counts.ok


class _RefusingMidRun:
    """Prompts of the ``ok`` fault; while prompts ``refuse_from`` to ``accept_from`` are drawn the server
    refuses connections (its listener closed, every open connection reset), then listens again."""

    def __init__(self, server: FaultyTriton, refuse_from: int, accept_from: int) -> None:
        self.server = server
        self.refuse_from = refuse_from
        self.accept_from = accept_from
        self.description = "ok prompts, server refusing connections mid-run"

    def prompts(self) -> Iterator[Prompt]:
        n = 0
        while True:
            if n == self.refuse_from:
                self.server.refuse_connections()
            if n == self.accept_from:
                self.server.accept_connections()
            yield Prompt(str(n), fault_prompt("ok"), 4)
            n += 1


async def test_refused_connections_mid_run_are_failures_and_the_run_recovers(
    server: FaultyTriton, tmp_path: Path
) -> None:
    total = 40
    records_path = tmp_path / "r.jsonl"
    spec = BenchSpec(
        shape=Rate(50.0, "constant"),
        stop=Stop(requests=total),
        workload=_RefusingMidRun(server, refuse_from=10, accept_from=20),
        read_timeout_s=READ_TIMEOUT_S,
        scrape_metrics=False,
        records_path=records_path,
    )
    # The model's inputs are read before the run; the refusals start once it is under way.
    outcome = await run_bench(spec, server.url)
    records = outcome.result.records
    assert sorted(r.index for r in records) == list(range(total))
    assert sorted(r.index for r in read_records(records_path)) == list(range(total))
    failed = [r for r in records if r.status == "failed"]
    assert {r.error_kind for r in failed} <= {"connect", "disconnect"}
    assert any(r.error_kind == "connect" for r in failed)
    assert all(r.status == "ok" for r in records if r.index < 8)
    assert any(r.status == "ok" for r in records if r.index > 25)
    counts = outcome.report.metrics.counts
    assert (counts.ok, counts.failed, counts.cancelled) == (
        sum(r.status == "ok" for r in records),
        len(failed),
        0,
    )


def test_refused_before_the_run_is_one_line(tmp_path: Path) -> None:
    with FaultyTriton() as fake:
        url = fake.url
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--url", url, "--no-server-metrics"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect" in result.stderr
