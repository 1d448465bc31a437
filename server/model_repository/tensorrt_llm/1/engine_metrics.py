"""The TensorRT-LLM backend's Prometheus families, computed from the CPU engine's scheduler.

The real backend (``inflight_batcher_llm/src/custom_metrics_reporter``) publishes gauge families with the
labels ``model``, ``version`` and one category label each, filled from the executor's iteration statistics;
two histograms count input and output tokens per finished request. ``snapshot`` computes the same values
from the scheduler; ``TritonMetrics`` publishes them through the python backend's custom metrics. Free of
Triton except for ``TritonMetrics``, so the arithmetic can be tested alone. Only values that changed are
set, so a single stream's iterations mostly make no metric calls at all.
Sources: docs/upstream-contract.md.
"""

from __future__ import annotations

import time
from typing import Any

TOKENS_PER_BLOCK = 64
TOKEN_BUCKETS = [10.0, 50.0, 100.0, 500.0, 1000.0]

# family -> (category label, description, label values in publishing order)
GAUGE_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "nv_trt_llm_request_metrics": (
        "request_type",
        "TRT LLM request metrics",
        ("active", "max", "scheduled", "context", "waiting"),
    ),
    "nv_trt_llm_kv_cache_block_metrics": (
        "kv_cache_block_type",
        "TRT LLM KV cache block metrics",
        ("max", "free", "used", "tokens_per", "reused", "fraction"),
    ),
    "nv_trt_llm_inflight_batcher_metrics": (
        "inflight_batcher_specific_metric",
        "TRT LLM inflight_batcher-specific metrics",
        ("total_context_tokens", "generation_requests", "micro_batch_id", "paused_requests"),
    ),
    "nv_trt_llm_general_metrics": (
        "general_type",
        "General TRT LLM metrics",
        ("timestamp", "iteration_counter"),
    ),
}
# histogram family -> (category label, label value)
TOKEN_HISTOGRAMS = {
    "nv_llm_input_token_len": ("response_metric_type", "total_input_tokens"),
    "nv_llm_output_token_len": ("response_metric_type", "total_output_tokens"),
}


def blocks(tokens: int) -> int:
    """KV-cache blocks that hold ``tokens`` tokens."""
    return -(-tokens // TOKENS_PER_BLOCK)


def snapshot(scheduler: Any, now_s: float | None = None) -> dict[str, dict[str, float]]:
    """Every gauge's value for the scheduler's state right after an iteration (or while idle).

    As upstream: ``active`` counts queued and running sequences, ``waiting`` is active minus scheduled,
    the timestamp is microseconds since the epoch.
    """
    limits = scheduler.limits
    scheduled = len(scheduler.active)
    active = scheduled + len(scheduler.waiting)
    cache = scheduler.kv_cache
    max_blocks = cache.total_blocks
    used = cache.used
    context = scheduler.context_requests if scheduled else 0
    return {
        "nv_trt_llm_request_metrics": {
            "active": active,
            "max": limits.max_batch_size,
            "scheduled": scheduled,
            "context": context,
            "waiting": active - scheduled,
        },
        "nv_trt_llm_kv_cache_block_metrics": {
            "max": max_blocks,
            "free": max(0, max_blocks - used),
            "used": used,
            "tokens_per": cache.tokens_per_block,
            "reused": cache.reused_blocks,
            "fraction": used / max_blocks if max_blocks else 0.0,
        },
        "nv_trt_llm_inflight_batcher_metrics": {
            "total_context_tokens": scheduler.context_tokens if scheduled else 0,
            "generation_requests": scheduled - context,
            "micro_batch_id": 0,
            "paused_requests": 0,
        },
        "nv_trt_llm_general_metrics": {
            "timestamp": (time.time() if now_s is None else now_s) * 1e6,
            "iteration_counter": scheduler.iterations,
        },
    }


class TritonMetrics:
    """The families above as python-backend custom metrics of one model version."""

    def __init__(self, pb_utils: Any, model: str, version: str, quiet_period_s: float = 0.1) -> None:
        family_type = pb_utils.MetricFamily
        # the families must outlive their metrics, so they are kept here too
        self.families: list[Any] = []
        self.gauges: dict[tuple[str, str], Any] = {}
        for name, (category, description, values) in GAUGE_FAMILIES.items():
            family = family_type(name=name, description=description, kind=family_type.GAUGE)
            self.families.append(family)
            for value in values:
                labels = {"model": model, "version": version, category: value}
                self.gauges[(name, value)] = family.Metric(labels=labels)
        self.histograms: dict[str, Any] = {}
        if hasattr(family_type, "HISTOGRAM"):  # Triton 24.08 and later
            for name, (category, value) in TOKEN_HISTOGRAMS.items():
                family = family_type(
                    name=name, description="TRT LLM response metrics", kind=family_type.HISTOGRAM
                )
                self.families.append(family)
                labels = {"model": model, "version": version, category: value}
                self.histograms[name] = family.Metric(labels=labels, buckets=TOKEN_BUCKETS)

        self.last: dict[tuple[str, str], float] = {}
        self.quiet_period_s = quiet_period_s
        self.general_at = 0.0

    def publish(self, values: dict[str, dict[str, float]], now_s: float | None = None) -> None:
        """Set every gauge whose value changed since the last call.

        The timestamp and iteration counter change every iteration; alone, they are set at most once per
        quiet period (the backend's ``stats_check_period_ms``), which keeps a single stream's iterations
        free of metric calls. With any other change they are set too.
        """
        now = time.monotonic() if now_s is None else now_s
        changed = [
            ((name, label), value)
            for name, by_label in values.items()
            for label, value in by_label.items()
            if self.last.get((name, label)) != value
        ]
        general = all(name == "nv_trt_llm_general_metrics" for (name, _), _ in changed)
        if general and now - self.general_at < self.quiet_period_s:
            return
        for key, value in changed:
            self.gauges[key].set(float(value))
            self.last[key] = value
        if any(name == "nv_trt_llm_general_metrics" for (name, _), _ in changed):
            self.general_at = now

    def observe_request(self, input_tokens: int, output_tokens: int) -> None:
        if self.histograms:
            self.histograms["nv_llm_input_token_len"].observe(float(input_tokens))
            self.histograms["nv_llm_output_token_len"].observe(float(output_tokens))
