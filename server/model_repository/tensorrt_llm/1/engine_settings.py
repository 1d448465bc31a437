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

    @classmethod
    def load(cls, engine_dir: Path) -> EngineSettings:
        config = json.loads((engine_dir / "config.json").read_text())
        build = config["build_config"]
        cpu = config.get("cpu_engine")
        if cpu is None:
            raise RequestError(
                f"{engine_dir}/config.json has no cpu_engine section: it is a TensorRT engine, "
                "which needs triton_backend=tensorrtllm on a GPU host"
            )
        max_seq_len = int(build.get("max_seq_len") or build["max_input_len"] + build["max_output_len"])
        limits = Limits(
            max_batch_size=int(build["max_batch_size"]),
            max_input_len=int(build["max_input_len"]),
            max_seq_len=max_seq_len,
            max_num_tokens=int(build.get("max_num_tokens") or 8192),
            max_beam_width=int(build.get("max_beam_width") or 1),
            kv_cache_tokens=int(cpu["kv_cache_tokens"]),
            tokens_per_block=int((build.get("plugin_config") or {}).get("tokens_per_block") or 64),
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
        )
