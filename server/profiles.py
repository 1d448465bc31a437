"""Timing profiles of the CPU engine.

A profile says how long the engine's context (prefill) phase takes for a prompt of a given length and how
many tokens per second one sequence decodes, both at batch size 1, plus how much a decoding step slows down
per extra sequence in the batch.

The Orin profiles are fitted to the published table for Llama-3-8B on Jetson AGX Orin 64GB with TensorRT-LLM
0.12 at batch 1 (context time at 128 / 512 / 1024 input tokens, decode tokens/s at the same lengths). The
table has no batch dimension: ``batch_step_growth`` is this project's assumption (decoding an 8B model on
Orin is bound by memory bandwidth, so one more sequence adds little to a step), not a published figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trtclient.errors import SetupError

__all__ = ["PROFILES", "Profile", "get_profile"]


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
        ),
        Profile(
            name="orin-int4-gptq",
            description="Llama-3-8B INT4-GPTQ on Jetson Orin 64GB",
            context_ms=((128, 105.0), (512, 292.0), (1024, 337.0)),
            decode_tokens_per_s=((128, 34.5), (512, 33.7), (1024, 33.3)),
            batch_step_growth=0.015,
            source=_ORIN_SOURCE,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The named profile, or a ``SetupError`` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise SetupError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
