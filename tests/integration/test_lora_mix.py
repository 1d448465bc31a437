"""A LoRA mix against the real embedded Triton (instant profile: only outcomes matter here), over gRPC,
which carries the FP16 ``lora_weights`` a new adapter's first request sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtclient import exit_codes
from trtclient.cli import main
from trtclient.server.launcher import ServerHandle

pytestmark = pytest.mark.integration


def test_a_lora_mix_reports_each_adapter_and_the_engine_error_for_an_unknown_one(
    triton_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, records = tmp_path / "run.json", tmp_path / "records.jsonl"
    code = main(
        [
            "bench",
            "--url",
            triton_server.grpc_url,
            "--transport",
            "grpc",
            "--lora",
            "support:2,sql:1,4242:1",
            "--prompt",
            "What is machine learning?",
            "--max-tokens",
            "3",
            "--concurrency",
            "2",
            "--requests",
            "24",
            "--no-progress",
            "--no-server-metrics",
            "--json",
            str(out),
            "--records",
            str(records),
        ]
    )
    console = capsys.readouterr().out
    assert code == exit_codes.FAILURES, console  # the unknown adapter's requests fail (the outcomes below)
    summary = json.loads(out.read_text())
    adapters = {g["label"]: g for g in summary["workload"]["adapters"]}
    assert set(adapters) == {"support", "sql", "4242"}
    # introduced with their weights on first use: every request of the named adapters succeeds
    assert adapters["support"]["failed"] == adapters["sql"]["failed"] == 0
    assert adapters["support"]["ok"] > 0 and adapters["sql"]["ok"] > 0
    # never sent with weights: refused by the engine with TensorRT-LLM's message, counted as failures
    unknown = adapters["4242"]
    assert unknown["ok"] == 0 and unknown["failed"] > 0
    message = "LoRA task 4242 not found in cache. Please send LoRA weights with request"
    assert message in unknown["first_error"]
    assert summary["requests"]["failed"] == unknown["failed"]
    assert "by adapter" in console and message in console
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert {r["adapter"] for r in lines} == {"support", "sql", "4242"}
