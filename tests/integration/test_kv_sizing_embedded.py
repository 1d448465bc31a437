"""The embedded server sizes its KV pool as TensorRT-LLM does, and /metrics shows the size.

For the Orin profile (Llama-3-8B on a 64 GB Jetson AGX Orin, 6.8 GB engine footprint) the pool is
``kv_cache_free_gpu_mem_fraction`` of the memory left after the engine, in 64-token blocks of 128 KiB a
token; ``--kv-cache-tokens`` overrides it. The expected figures are computed here from those facts
(docs/workloads.md), not taken from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from trtclient.cli import main
from trtclient.prometheus import find_samples, parse_metrics
from trtclient.server.launcher import EmbeddedTriton, ServerHandle

pytestmark = pytest.mark.integration

TOKEN_BYTES = 2 * 32 * 8 * 128 * 2  # K and V x layers x KV heads x head dim x fp16
BLOCK_BYTES = TOKEN_BYTES * 64
FREE_BYTES = 64_000_000_000 - 6_800_000_000


def block_metrics(server: ServerHandle) -> dict[str, float]:
    assert server.metrics_url
    samples = parse_metrics(httpx.get(server.metrics_url, timeout=10).text)
    values = {}
    for kind in ("max", "free", "used", "tokens_per"):
        (sample,) = find_samples(
            samples,
            "nv_trt_llm_kv_cache_block_metrics",
            {"kv_cache_block_type": kind, "model": "tensorrt_llm"},
        )
        values[kind] = sample.value
    return values


def test_orin_pool_follows_the_fraction() -> None:
    with EmbeddedTriton(profile="orin-int4") as server:
        default = block_metrics(server.handle)
    with EmbeddedTriton(profile="orin-int4", kv_cache_free_gpu_mem_fraction=0.25) as server:
        quarter = block_metrics(server.handle)
    assert default["max"] == FREE_BYTES * 9 // 10 // BLOCK_BYTES == 6136
    assert default["free"] == default["max"] and default["used"] == 0
    assert default["tokens_per"] == 64
    assert quarter["max"] == FREE_BYTES // 4 // BLOCK_BYTES == 1704


def test_kv_cache_tokens_overrides_the_fraction() -> None:
    with EmbeddedTriton(
        profile="orin-int4", kv_cache_tokens=6400, kv_cache_free_gpu_mem_fraction=0.5
    ) as server:
        metrics = block_metrics(server.handle)
    assert metrics["max"] == 100


def test_bench_sizes_its_embedded_server_pool_from_its_own_flags(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code = main(
        ["bench", "--profile", "orin-int4", "--kv-cache-free-gpu-mem-fraction", "0.25", "--burst", "2",
         "--max-tokens", "2", "--no-progress", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    gauges = json.loads(out.read_text())["server_metrics"]["trt_llm"]
    key = "tensorrt_llm:nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max}"
    assert gauges[key]["max"] == int(FREE_BYTES * 0.25 // BLOCK_BYTES)
    code = main(["bench", "--kv-cache-tokens", "6400", "--burst", "2", "--max-tokens", "2", "--no-progress",
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    assert json.loads(out.read_text())["server_metrics"]["trt_llm"][key]["max"] == 100
