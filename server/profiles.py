"""Timing profiles of the CPU engine.

A profile says how long the engine's context (prefill) phase takes for a prompt of a given length and how
many tokens per second one sequence decodes, both at batch size 1, plus how much a decoding step slows down
per extra sequence in the batch.

The Orin profiles are fitted to the published table for Llama-3-8B on Jetson AGX Orin 64GB with TensorRT-LLM
0.12 at batch 1 (context time at 128 / 512 / 1024 input tokens, decode tokens/s at the same lengths). The
table has no batch dimension: ``batch_step_growth`` is this project's assumption (decoding an 8B model on
Orin is bound by memory bandwidth, so one more sequence adds little to a step), not a published figure.

They also carry what TensorRT-LLM needs to size the paged KV cache: the device's memory, the engine's
footprint before the KV pool, and the KV bytes per token of Llama-3-8B; the pool is
``kv_cache_free_gpu_mem_fraction`` (0.9 by default) of the memory left after the engine (see
``docs/workloads.md`` for the sources and the assumptions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trtclient.errors import SetupError

__all__ = ["PROFILES", "Profile", "derive_kv_blocks", "get_profile", "kv_bytes_per_token"]


@dataclass(frozen=True)
class Profile:
    """How long the CPU engine takes for prefill and decode."""

    name: str
    description: str
    context_ms: tuple[tuple[int, float], ...] = ()
    """(input tokens, context-phase milliseconds) at batch 1; empty means no delay."""
    decode_tokens_per_s: tuple[tuple[int, float], ...] = ()
    """(input tokens, decode tokens/s of one sequence) at batch 1; empty means no delay."""
    batch_step_growth: float = 0.0
    """Fractional growth of a decoding step's time per active sequence beyond the first."""
    source: str = ""
    device_memory_gb: float = 0.0
    """Memory of the device the profile describes (GB, 10^9 bytes); 0 means the KV pool is not derived."""
    weights_gb: float = 0.0
    """Memory the engine holds before the KV cache is allocated (weights and activations), GB."""
    kv_bytes_per_token: int = 0
    """KV-cache bytes one token takes: 2 (K and V) x layers x KV heads x head dim x bytes per element."""

    def kv_cache_blocks(self, fraction: float, tokens_per_block: int) -> int | None:
        """KV blocks TensorRT-LLM would allocate: ``fraction`` of the memory left after the weights.

        ``None`` for a profile without a device memory figure (the engine then uses its default size).
        The CPU engine (``engine_settings.py``) carries its own copy of this arithmetic; the unit tests
        check that the two agree.
        """
        if not self.device_memory_gb or not self.kv_bytes_per_token:
            return None
        return derive_kv_blocks(
            int(self.device_memory_gb * 1e9),
            int(self.weights_gb * 1e9),
            fraction,
            self.kv_bytes_per_token,
            tokens_per_block,
        )

    def context_seconds(self, input_tokens: int) -> float:
        """Seconds the context phase of a prompt of ``input_tokens`` takes at batch 1."""
        if not self.context_ms:
            return 0.0
        return max(0.0, _interpolate(self.context_ms, input_tokens)) / 1000.0

    def step_seconds(self, batch_size: int, mean_context_tokens: float) -> float:
        """Seconds one decoding step takes for ``batch_size`` active sequences."""
        if not self.decode_tokens_per_s or batch_size <= 0:
            return 0.0
        rate = max(1e-3, _interpolate(self.decode_tokens_per_s, mean_context_tokens))
        return (1.0 / rate) * (1.0 + self.batch_step_growth * (batch_size - 1))

    def to_json(self) -> dict[str, Any]:
        """The profile as the JSON section the engine's config.json carries."""
        data = asdict(self)
        data["context_ms"] = [list(p) for p in self.context_ms]
        data["decode_tokens_per_s"] = [list(p) for p in self.decode_tokens_per_s]
        return data


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """Bytes of K and V one token takes across all layers."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def derive_kv_blocks(
    device_memory_bytes: int,
    weights_bytes: int,
    fraction: float,
    bytes_per_token: int,
    tokens_per_block: int,
) -> int:
    """Blocks of a KV pool of ``fraction`` of the memory free after the weights, at least one."""
    if not 0.0 < fraction <= 1.0:
        raise SetupError(f"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {fraction}")
    free = max(0, device_memory_bytes - weights_bytes)
    return max(1, int(free * fraction) // (bytes_per_token * tokens_per_block))


def _interpolate(points: Sequence[tuple[int, float]], x: float) -> float:
    """Piecewise-linear through ``points``, extended linearly past both ends.

    The CPU engine (``model_repository/tensorrt_llm/1/engine_settings.py``) runs in Triton's model
    environment, without trtclient, and carries its own copy; ``tests/unit/test_cpu_engine.py`` checks
    that the two agree.
    """
    if len(points) == 1:
        return points[0][1]
    pts = sorted(points)
    if x <= pts[0][0]:
        (x0, y0), (x1, y1) = pts[0], pts[1]
    elif x >= pts[-1][0]:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(1, len(pts)) if x <= pts[i][0])
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


# Llama-3-8B: 32 layers, 8 KV heads (grouped-query attention), head dim 128 (its config.json); the
# Jetson guide builds the engine with --dtype float16, so the KV cache holds 2-byte elements.
_LLAMA3_8B_KV_BYTES_PER_TOKEN = kv_bytes_per_token(layers=32, kv_heads=8, head_dim=128, dtype_bytes=2)
# Jetson AGX Orin 64GB. The guide's memory table gives 6.8 GB GPU memory for the INT4 engine with static
# batching (CUDA lazy loading, its default): the engine's footprint before a large KV pool. Memory the OS
# and other processes hold is not subtracted, so the derived pool is an upper bound (docs/workloads.md).
_ORIN_DEVICE_MEMORY_GB = 64.0
_ORIN_WEIGHTS_GB = 6.8

_ORIN_SOURCE = (
    "Llama-3-8B on Jetson AGX Orin 64GB, TensorRT-LLM 0.12, batch 1 (published benchmark table); "
    "batch growth assumed"
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(name="instant", description="no added delay: tokens as fast as the server can send them"),
        Profile(
            name="orin-int4",
            description="Llama-3-8B INT4 (AWQ) on Jetson Orin 64GB",
            context_ms=((128, 91.0), (512, 260.0), (1024, 582.0)),
            decode_tokens_per_s=((128, 35.9), (512, 35.2), (1024, 34.7)),
            batch_step_growth=0.015,
            source=_ORIN_SOURCE,
            device_memory_gb=_ORIN_DEVICE_MEMORY_GB,
            weights_gb=_ORIN_WEIGHTS_GB,
            kv_bytes_per_token=_LLAMA3_8B_KV_BYTES_PER_TOKEN,
        ),
        Profile(
            name="orin-int4-gptq",
            description="Llama-3-8B INT4-GPTQ on Jetson Orin 64GB",
            context_ms=((128, 105.0), (512, 292.0), (1024, 337.0)),
            decode_tokens_per_s=((128, 34.5), (512, 33.7), (1024, 33.3)),
            batch_step_growth=0.015,
            source=_ORIN_SOURCE,
            device_memory_gb=_ORIN_DEVICE_MEMORY_GB,
            weights_gb=_ORIN_WEIGHTS_GB,
            kv_bytes_per_token=_LLAMA3_8B_KV_BYTES_PER_TOKEN,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The named profile, or a ``SetupError`` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise SetupError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
