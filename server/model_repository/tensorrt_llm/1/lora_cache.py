"""The CPU engine's LoRA adapters: a host store of every adapter sent with its weights, and a device cache
of a fixed number of adapters (least recently used evicted) whose misses cost a load time.

As TensorRT-LLM's PEFT cache manager: a request names its adapter by ``lora_task_id``; the first request
for an adapter also sends ``lora_weights`` and ``lora_config``, later ones the id alone, and an id the
engine has never received weights for is refused with TensorRT-LLM's own message (see
docs/upstream-contract.md). Weights are checked for shape only: ``lora_config`` rows are
``[module, layer, rank]``, one per row of ``lora_weights``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LoraError(ValueError):
    """A LoRA request the engine refuses; the message is sent back to the client."""


def not_cached_message(task_id: int) -> str:
    """TensorRT-LLM's error for an adapter sent without weights that is not in its cache."""
    return f"LoRA task {task_id} not found in cache. Please send LoRA weights with request"


class LoraCache:
    """Adapters by task id: ``known`` (weights received) and the ``device`` cache of ``slots`` adapters."""

    def __init__(self, slots: int, load_seconds: float) -> None:
        self.slots = max(1, slots)
        self.load_seconds = load_seconds
        self.known: set[int] = set()
        self.device: OrderedDict[int, None] = OrderedDict()
        self.loads = 0

    def register(self, task_id: int, weights: Any, config: Any) -> None:
        """Check a request's adapter fields (``weights``/``config`` None when not sent); raise LoraError."""
        if (weights is None) != (config is None):
            raise LoraError(
                "lora_weights and lora_config must be sent together (or neither, for a cached adapter)"
            )
        if weights is None:
            if task_id not in self.known:
                raise LoraError(not_cached_message(task_id))
            return
        rows = config.reshape(-1, 3).shape[0] if config.size % 3 == 0 else -1
        weight_rows = weights.reshape(weights.shape[0] if weights.ndim > 1 else 1, -1).shape[0]
        if rows < 1 or rows != weight_rows:
            raise LoraError(
                f"lora_config must have one [module, layer, rank] row per row of lora_weights "
                f"(got {config.size} config values for {weight_rows} weight rows)"
            )
        self.known.add(task_id)

    def acquire(self, task_id: int) -> float:
        """The adapter is used now: seconds its load to the device takes (0 when it is there already)."""
        if task_id in self.device:
            self.device.move_to_end(task_id)
            return 0.0
        self.device[task_id] = None
        while len(self.device) > self.slots:
            self.device.popitem(last=False)
        self.loads += 1
        return self.load_seconds
