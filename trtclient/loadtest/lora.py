"""A mix of LoRA adapters over any workload: each request gets an adapter drawn by weight.

``--lora NAME_OR_ID:WEIGHT,...``: an integer is a TensorRT-LLM ``lora_task_id`` the server already holds
(loaded from ``lora_prefetch_dir`` or sent earlier), sent as the id alone. A name stands for an adapter
this run introduces: its task id is derived from the name (stable across runs), and its first request
also carries ``lora_weights`` and ``lora_config``, as TensorRT-LLM requires for an adapter not in its
cache. Those are small stand-in tensors (one ``[module, layer, rank]`` row of rank 8, zero weights) fit
for the embedded CPU engine, which checks shapes only; they are FP16, which Triton's HTTP generate
endpoint cannot carry, so named adapters need the gRPC transport. The adapter's name, or its id, labels
the request's record, so reports break latencies down per adapter.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trtclient.loadtest.workload import Prompt, Workload, WorkloadError

__all__ = ["STAND_IN_CONFIG", "STAND_IN_WEIGHTS", "Adapter", "LoraMix", "parse_lora"]

#: One ``[module, layer, rank]`` row (``lora_config``) and its row of weights (``lora_weights``).
STAND_IN_RANK = 8
STAND_IN_CONFIG = [0, 0, STAND_IN_RANK]
STAND_IN_WEIGHTS = [0.0] * (2 * STAND_IN_RANK)


@dataclass(frozen=True)
class Adapter:
    """One adapter of the mix."""

    label: str
    task_id: int
    weight: float
    sends_weights: bool
    """Its first request carries stand-in weights (a named adapter); an id alone never does."""


def _task_id(name: str) -> int:
    return zlib.crc32(name.encode()) or 1


def parse_lora(text: str, flag: str = "--lora") -> list[Adapter]:
    """``NAME_OR_ID:WEIGHT,...`` (the weight defaults to 1); the error names the flag and the item."""
    adapters: list[Adapter] = []
    for item in (part.strip() for part in text.split(",")):
        name, sep, weight_text = item.rpartition(":")
        if not sep:
            name, weight_text = item, "1"
        try:
            weight = float(weight_text)
        except ValueError:
            weight = -1.0
        if not name or not weight > 0 or weight == float("inf"):
            raise WorkloadError(
                f"{flag}: {item!r} is not NAME_OR_ID:WEIGHT (an adapter name or lora_task_id, then a "
                "positive weight), e.g. --lora support:3,sql:1"
            )
        if name.isdigit():
            adapters.append(Adapter(name, int(name), weight, sends_weights=False))
        else:
            adapters.append(Adapter(name, _task_id(name), weight, sends_weights=True))
    labels = [a.label for a in adapters]
    if len(set(labels)) != len(labels):
        raise WorkloadError(f"{flag}: an adapter is listed twice in {text!r}")
    return adapters


class LoraMix:
    """``inner``'s prompts, each with an adapter drawn by weight (seeded)."""

    def __init__(self, inner: Workload, adapters: list[Adapter], *, seed: int = 0) -> None:
        if not adapters:
            raise WorkloadError("a LoRA mix needs at least one adapter")
        self.inner = inner
        self.adapters = adapters
        self._seed = seed
        mix = ", ".join(f"{a.label} ({a.weight:g})" for a in adapters)
        self.description = f"{inner.description}, LoRA adapters {mix}"
        self.notes: list[str] = list(getattr(inner, "notes", []))

    @property
    def needs_binary_inputs(self) -> bool:
        """Some adapter sends FP16 weights (the gRPC transport carries them; HTTP generate does not)."""
        return any(a.sends_weights for a in self.adapters)

    def prompts(self) -> Iterator[Prompt]:
        rng = random.Random(f"lora-{self._seed}")
        weights = [a.weight for a in self.adapters]
        introduced: set[int] = set()
        for prompt in self.inner.prompts():
            adapter = rng.choices(self.adapters, weights)[0]
            fields: list[tuple[str, Any]] = [*prompt.fields, ("lora_task_id", adapter.task_id)]
            if adapter.sends_weights and adapter.task_id not in introduced:
                introduced.add(adapter.task_id)
                fields += [("lora_weights", STAND_IN_WEIGHTS), ("lora_config", STAND_IN_CONFIG)]
            yield dataclasses.replace(prompt, adapter=adapter.label, fields=tuple(fields))
