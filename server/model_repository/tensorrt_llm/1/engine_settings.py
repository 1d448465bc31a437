"""What the CPU engine's directory says: limits, the timing profile, LoRA cache settings, the tables.

Read from ``config.json`` in TensorRT-LLM's layout plus the ``cpu_engine`` section ``trtclient``'s
engine builder writes (``server/engine.py``). Free of Triton so it can be tested alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RequestError(ValueError):
    """A request the engine rejects; the message is sent back to the client."""


@dataclass
class Limits:
    max_batch_size: int
    max_input_len: int
    max_seq_len: int
    max_num_tokens: int
    max_beam_width: int
    kv_cache_tokens: int
    tokens_per_block: int = 64


DEFAULT_FREE_GPU_MEM_FRACTION = 0.9
"""TensorRT-LLM's default kv_cache_free_gpu_mem_fraction (KvCacheConfig.free_gpu_memory_fraction)."""


def derive_kv_blocks(
    device_memory_bytes: int,
    weights_bytes: int,
    fraction: float,
    bytes_per_token: int,
    tokens_per_block: int,
) -> int:
    """Blocks of a KV pool of ``fraction`` of the memory free after the weights, at least one.

    The same arithmetic as ``trtclient.server.profiles.derive_kv_blocks`` (this module cannot import
    trtclient); ``tests/unit/test_kv_sizing.py`` checks that the two agree.
    """
    if not 0.0 < fraction <= 1.0:
        raise RequestError(f"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {fraction}")
    free = max(0, device_memory_bytes - weights_bytes)
    return max(1, int(free * fraction) // (bytes_per_token * tokens_per_block))


def kv_cache_tokens(
    cpu: dict[str, Any], build: dict[str, Any], tokens_per_block: int, fraction: float | None
) -> tuple[int, str]:
    """The KV pool in tokens (a whole number of blocks when derived) and how it was decided.

    ``kv_cache_tokens`` in the cpu_engine section overrides; otherwise the profile's device memory,
    engine footprint and KV bytes per token give ``fraction`` of the free memory, as TensorRT-LLM sizes
    its pool; a profile without them gets max batch x max_seq_len / 2.
    """
    if cpu.get("kv_cache_tokens"):
        return int(cpu["kv_cache_tokens"]), "kv_cache_tokens"
    profile = cpu.get("profile") or {}
    memory_gb = float(profile.get("device_memory_gb") or 0.0)
    per_token = int(profile.get("kv_bytes_per_token") or 0)
    if memory_gb and per_token:
        used = DEFAULT_FREE_GPU_MEM_FRACTION if fraction is None else fraction
        blocks = derive_kv_blocks(
            int(memory_gb * 1e9),
            int(float(profile.get("weights_gb") or 0.0) * 1e9),
            used,
            per_token,
            tokens_per_block,
        )
        return blocks * tokens_per_block, f"kv_cache_free_gpu_mem_fraction={used}"
    max_seq_len = int(build.get("max_seq_len") or build["max_input_len"] + build["max_output_len"])
    return int(build["max_batch_size"]) * max_seq_len // 2, "default"


@dataclass
class Timing:
    context_ms: list[tuple[float, float]]
    decode_tokens_per_s: list[tuple[float, float]]
    batch_step_growth: float

    def context_seconds(self, tokens: int) -> float:
        if not self.context_ms:
            return 0.0
        return max(0.0, _interpolate(self.context_ms, tokens)) / 1000.0

    def step_seconds(self, batch: int, mean_tokens: float) -> float:
        if not self.decode_tokens_per_s or batch <= 0:
            return 0.0
        rate = max(1e-3, _interpolate(self.decode_tokens_per_s, mean_tokens))
        return (1.0 + self.batch_step_growth * (batch - 1)) / rate


def _interpolate(points: list[tuple[float, float]], x: float) -> float:
    pts = sorted(points)
    if len(pts) == 1:
        return pts[0][1]
    if x <= pts[0][0]:
        (x0, y0), (x1, y1) = pts[0], pts[1]
    elif x >= pts[-1][0]:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(1, len(pts)) if x <= pts[i][0])
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass
class EngineSettings:
    """What the engine directory's config.json says."""

    limits: Limits
    timing: Timing
    profile_name: str
    eos_probability: float
    tables: dict[str, Any]
    lora_cache_adapters: int = 8
    lora_load_ms: float = 0.0
    kv_cache_sizing: str = "kv_cache_tokens"
    """How the KV pool's size was decided (kv_cache_tokens, the fraction, or the default)."""

    @classmethod
    def load(cls, engine_dir: Path, kv_cache_free_gpu_mem_fraction: float | None = None) -> EngineSettings:
        """Read ``engine_dir``; ``kv_cache_free_gpu_mem_fraction`` (default 0.9) sizes a derived KV pool."""
        config = json.loads((engine_dir / "config.json").read_text())
        build = config["build_config"]
        cpu = config.get("cpu_engine")
        if cpu is None:
            raise RequestError(
                f"{engine_dir}/config.json has no cpu_engine section: it is a TensorRT engine, "
                "which needs triton_backend=tensorrtllm on a GPU host"
            )
        max_seq_len = int(build.get("max_seq_len") or build["max_input_len"] + build["max_output_len"])
        tokens_per_block = int((build.get("plugin_config") or {}).get("tokens_per_block") or 64)
        kv_tokens, sizing = kv_cache_tokens(cpu, build, tokens_per_block, kv_cache_free_gpu_mem_fraction)
        limits = Limits(
            max_batch_size=int(build["max_batch_size"]),
            max_input_len=int(build["max_input_len"]),
            max_seq_len=max_seq_len,
            max_num_tokens=int(build.get("max_num_tokens") or 8192),
            max_beam_width=int(build.get("max_beam_width") or 1),
            kv_cache_tokens=kv_tokens,
            tokens_per_block=tokens_per_block,
        )
        profile = cpu["profile"]
        timing = Timing(
            context_ms=[tuple(p) for p in profile.get("context_ms", [])],  # type: ignore[misc]
            decode_tokens_per_s=[tuple(p) for p in profile.get("decode_tokens_per_s", [])],  # type: ignore[misc]
            batch_step_growth=float(profile.get("batch_step_growth", 0.0)),
        )
        tables = json.loads((engine_dir / cpu["tables"]).read_text())
        return cls(
            limits,
            timing,
            str(profile["name"]),
            float(cpu.get("eos_probability", 0.0)),
            tables,
            int(cpu.get("lora_cache_adapters", 8)),
            float(cpu.get("lora_load_ms", 0.0)),
            sizing,
        )
