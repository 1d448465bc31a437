"""The user options of the five-model repository, each filling the placeholder of the same name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trtclient.server.engine_config import EngineConfig, read_engine_config
from trtclient.server.render import TemplateError

__all__ = ["BATCHING_STRATEGIES", "DATA_TYPES", "SCHEDULER_POLICIES", "TRITON_BACKENDS", "RepositoryOptions"]

BATCHING_STRATEGIES = ("inflight_fused_batching", "inflight_batching", "V1")
SCHEDULER_POLICIES = ("max_utilization", "guaranteed_no_evict")
TRITON_BACKENDS = ("tensorrtllm", "python")
DATA_TYPES = ("TYPE_FP32", "TYPE_FP16", "TYPE_BF16")

_DATA_TYPE_OPTIONS = (
    "logits_datatype",
    "encoder_input_features_data_type",
    "prompt_embedding_table_data_type",
)
_KEY = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")


@dataclass(frozen=True)
class RepositoryOptions:
    """User options of the five-model repository; each field fills the placeholder of the same name.

    ``None`` leaves the placeholder unfilled: a required one (``engine_dir``, ``tokenizer_dir``) then
    fails rendering, any other parameter falls back to the backend's default. ``extra`` fills any
    other placeholder (e.g. ``lora_cache_gpu_memory_fraction``) verbatim.
    """

    engine_dir: str | None = None
    tokenizer_dir: str | None = None
    triton_backend: str = "tensorrtllm"
    triton_max_batch_size: int = 64
    max_beam_width: int = 1
    decoupled_mode: bool = True
    batching_strategy: str = "inflight_fused_batching"
    batch_scheduler_policy: str | None = None
    kv_cache_free_gpu_mem_fraction: float | None = None
    enable_kv_cache_reuse: bool | None = None
    enable_chunked_context: bool | None = None
    exclude_input_in_output: bool | None = None
    max_queue_delay_microseconds: int = 0
    max_queue_size: int = 0
    logits_datatype: str = "TYPE_FP32"
    encoder_input_features_data_type: str = "TYPE_FP16"
    prompt_embedding_table_data_type: str = "TYPE_FP16"
    preprocessing_instance_count: int = 1
    postprocessing_instance_count: int = 1
    bls_instance_count: int = 1
    tensorrt_llm_model_name: str = "tensorrt_llm"
    accumulate_tokens: bool | None = None
    add_special_tokens: bool | None = None
    skip_special_tokens: bool | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _one_of("triton_backend", self.triton_backend, TRITON_BACKENDS)
        _one_of("batching_strategy", self.batching_strategy, BATCHING_STRATEGIES)
        if self.batch_scheduler_policy is not None:
            _one_of("batch_scheduler_policy", self.batch_scheduler_policy, SCHEDULER_POLICIES)
        for name in _DATA_TYPE_OPTIONS:
            _one_of(name, getattr(self, name), DATA_TYPES)
        for name in (
            "triton_max_batch_size",
            "max_beam_width",
            "preprocessing_instance_count",
            "postprocessing_instance_count",
            "bls_instance_count",
        ):
            _at_least(name, getattr(self, name), 1)
        _at_least("max_queue_size", self.max_queue_size, 0)
        _at_least("max_queue_delay_microseconds", self.max_queue_delay_microseconds, 0)
        fraction = self.kv_cache_free_gpu_mem_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise TemplateError(f"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {fraction}")
        own = {item.name for item in fields(self)} - {"extra"}
        for key, value in self.extra.items():
            if key in own:
                raise TemplateError(f"extra value {key!r} is an option of its own; set it as {key}=...")
            if not _KEY.match(key):
                raise TemplateError(f"extra value name {key!r} is not a placeholder name")
            if not isinstance(value, str):
                raise TemplateError(f"extra value {key!r} must be a string, got {type(value).__name__}")

    @classmethod
    def for_engine(cls, engine: EngineConfig | str | Path, **changes: Any) -> RepositoryOptions:
        """Options for an engine: engine_dir, triton_max_batch_size, max_beam_width from its config.json."""
        config = engine if isinstance(engine, EngineConfig) else read_engine_config(engine)
        settings: dict[str, Any] = {
            "engine_dir": str(config.engine_dir),
            "triton_max_batch_size": config.max_batch_size,
            "max_beam_width": config.max_beam_width,
        }
        settings.update(changes)
        return cls(**settings)

    def to_values(self) -> dict[str, str]:
        """Placeholder values as strings (booleans as ``true``/``false``); ``None`` options left out."""
        values: dict[str, str] = {}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is not None:
                values[item.name] = _as_text(value)
        values.update(self.extra)
        return values


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TemplateError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _at_least(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TemplateError(f"{name} must be an integer >= {minimum}; got {value!r}")
