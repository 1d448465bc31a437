"""What a CI job sees from ``trtclient bench`` against the real embedded Triton: exit codes, the server's
own failure messages, peer flags and exports, and wrong-URL diagnoses on the server's three ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from trtclient import exit_codes
from trtclient.bench.compare import load_run
from trtclient.loadtest.records import read_records
from trtclient.server.launcher import ServerHandle
from trtclient.server.tokenizer import corpus_text

pytestmark = pytest.mark.integration


def bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--no-progress", *argv],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_peer_spelling_run_and_their_export_loads(triton_server: ServerHandle, tmp_path: Path) -> None:
    summary = tmp_path / "run.json"
    result = bench(
        "--url", triton_server.url, "--request-count", "8", "--streaming", "-m", "ensemble",
        "--concurrency", "2", "--max-tokens", "4", "--json", str(summary),
        "--export-format", "genai-perf", "--export-format", "aiperf", "--records", str(tmp_path / "r.jsonl"),
    )  # fmt: skip
    assert result.returncode == exit_codes.OK, result.stderr
    ours = json.loads(summary.read_text())
    assert ours["requests"]["ok"] == 8
    records = list(read_records(tmp_path / "r.jsonl"))
    assert {r.run_id for r in records} == {ours["config"]["run_id"]}  # records name the run they belong to
    for name, kind in (("run_genai_perf.json", "genai-perf"), ("run_aiperf.json", "aiperf")):
        theirs = json.loads((tmp_path / name).read_text())
        assert theirs["request_count"]["avg"] == 8
        assert theirs["time_to_first_token"]["p99"] == ours["ttft_ms"]["p99"]
        assert load_run(tmp_path / name).kind == kind


@pytest.fixture()
def one_too_long(tmp_path: Path) -> Path:
    """Four prompts, one of them longer than the engine's max_input_len (1024 tokens)."""
    text = corpus_text() or "word " * 4000
    long_prompt = (text * (1 + 8000 // max(1, len(text))))[:12000]
    lines = [{"text_input": "What is machine learning?", "max_tokens": 4}] * 3
    lines.append({"text_input": long_prompt, "max_tokens": 4})
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("budget", "code"), [(None, exit_codes.FAILURES), ("1", exit_codes.OK), ("10%", exit_codes.FAILURES)]
)
def test_failures_gate_the_exit_code_and_the_server_message_is_shown(
    triton_server: ServerHandle, one_too_long: Path, tmp_path: Path, budget: str | None, code: int
) -> None:
    summary = tmp_path / "run.json"
    extra = ["--max-failures", budget] if budget else []
    result = bench(
        "--url", triton_server.url, "--dataset", str(one_too_long), "--burst", "4", "--json", str(summary),
        *extra,
    )  # fmt: skip
    assert result.returncode == code, result.stdout + result.stderr
    reasons = json.loads(summary.read_text())["failure_reasons"]
    ((kind, reason),) = reasons.items()
    assert reason["count"] == 1
    assert "max_input_len" in reason["messages"][0]["message"]  # the engine's own words
    assert f"failed {kind} (1): " in result.stdout and "max_input_len" in result.stdout


def test_an_slo_nobody_meets_fails_the_run_only_with_fail_on_slo(triton_server: ServerHandle) -> None:
    common = ["--url", triton_server.url, "--burst", "2", "--max-tokens", "4", "--slo", "e2e=0.001"]
    assert bench(*common).returncode == exit_codes.OK
    result = bench(*common, "--fail-on-slo")
    assert result.returncode == exit_codes.SLO_MISSED, result.stderr


def _port(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.hostname}:{parts.port}"


def test_wrong_urls_are_diagnosed(triton_server: ServerHandle) -> None:
    http, grpc, metrics = (
        _port(u) for u in (triton_server.url, triton_server.grpc_url, triton_server.metrics_url)
    )
    cases = {
        f"https://{http}": "does not speak TLS; use http://",
        f"http://{metrics}": "serves Triton's metrics, not its HTTP API",
        f"http://{grpc}": "speaks HTTP/2 only, like Triton's gRPC port",
    }
    for url, said in cases.items():
        result = bench("--url", url, "--burst", "1", "--no-server-metrics")
        assert result.returncode == exit_codes.ERROR, result.stderr
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    pasted = bench("--url", f"{triton_server.url}/v2/models/ensemble/generate_stream", "--burst", "1",
                   "--max-tokens", "2")  # fmt: skip
    assert pasted.returncode == exit_codes.OK, pasted.stderr
    assert "/v2/models/ensemble/generate_stream was left out" in pasted.stderr


async def test_a_fresh_server_gets_one_unmeasured_request_first() -> None:
    from trtclient.bench.session import BenchSpec, run_bench
    from trtclient.client import AsyncTritonClient
    from trtclient.loadtest.schedule import Burst, Stop
    from trtclient.loadtest.workload import FixedPrompt
    from trtclient.server.launcher import EmbeddedTriton

    note = "the server had served no request yet: one unmeasured warm-up request went first"
    spec = BenchSpec(
        Burst(3), Stop(requests=3), FixedPrompt("What is machine learning?", 4), scrape_metrics=False
    )
    with EmbeddedTriton(profile="instant") as server:
        first = await run_bench(spec, server.url)
        second = await run_bench(spec, server.url)
        async with AsyncTritonClient(server.url) as client:
            (stats,) = await client.model_statistics("ensemble")
    assert note in first.report.notes and note not in second.report.notes
    assert len(first.result.records) == len(second.result.records) == 3  # the warm-up has no record
    assert stats.inference_count == 3 + 3 + 1


def test_a_sharegpt_run_notes_what_was_skipped_and_which_lengths(
    triton_server: ServerHandle, tmp_path: Path
) -> None:
    turn = lambda who, text: {"from": who, "value": text}  # noqa: E731
    data = [
        {"id": "a", "conversations": [turn("human", "What is machine learning?"), turn("gpt", "A field.")]},
        {"id": "b", "conversations": [turn("gpt", "hello")]},
    ]
    dataset, summary = tmp_path / "share.json", tmp_path / "run.json"
    dataset.write_text(json.dumps(data))
    result = bench(
        "--url", triton_server.url, "--dataset", str(dataset), "--request-count", "2", "--max-tokens", "4",
        "--json", str(summary),
    )  # fmt: skip
    assert result.returncode == exit_codes.OK, result.stderr
    skipped = "share.json: 1 conversations used, 1 skipped: 1 without a human turn followed by a reply"
    lengths = (
        "share.json: output lengths are max_tokens 4 for every request (no tokenizer to count the replies)"
    )
    notes = json.loads(summary.read_text())["notes"]
    assert skipped in notes and lengths in notes
    assert f"note: {skipped}" in result.stdout + result.stderr
    assert f"note: {lengths}" in result.stdout + result.stderr
