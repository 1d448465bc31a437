"""The output tensors of one ``tensorrt_llm`` response, shaped as the TensorRT-LLM backend shapes them.

Pure numpy, so the shapes can be tested without Triton. Every tensor has a leading batch dimension of 1
(one response answers one row of a request): ``output_ids`` ``[1, beams, len]``, ``sequence_length`` and
``cum_log_probs`` ``[1, beams]``, ``output_log_probs`` ``[1, beams, generated tokens of this response]``,
``context_logits`` ``[1, prompt len, vocab]``, ``generation_logits`` ``[1, beams, generated tokens, vocab]``,
and the scalars (``batch_index`` only for a batch of more than one row since v0.14, ``sequence_index``
only with more than one return sequence, perf metrics, token counts) ``[1, 1]``.
Sources: docs/upstream-contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LOGITS_DTYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}


@dataclass
class Wanted:
    """Which optional outputs a request asked for (its ``return_*`` inputs)."""

    log_probs: bool = False
    context_logits: bool = False
    generation_logits: bool = False
    perf: bool = False
    num_input: bool = False
    num_output: bool = False


@dataclass
class Row:
    """Where a sequence's responses go: the row of its (possibly batched) request."""

    wanted: Wanted
    batch_index: int = 0
    batch_size: int = 1
    batch_index_always: bool = False
    """Send ``batch_index`` for a single row too (TRT-LLM backend up to v0.13)."""


def _i32(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.int32)


def output_tensors(
    emission: Any, row: Row, *, vocab_size: int, logits_dtype: Any = np.float32
) -> list[tuple[str, np.ndarray]]:
    """Name and array of every tensor the response to ``emission`` carries."""
    seq = emission.sequence
    spec = seq.request
    tokens = emission.tokens
    wanted = row.wanted
    out: list[tuple[str, np.ndarray]] = [
        ("output_ids", _i32([[tokens]])),
        ("sequence_length", _i32([[len(tokens)]])),
    ]
    if row.batch_size > 1 or row.batch_index_always:
        out.append(("batch_index", _i32([[row.batch_index]])))
    if spec.num_sequences > 1:
        out.append(("sequence_index", _i32([[seq.index]])))
    # the generated tokens of this response: the newest ``emission.generated`` of the sequence
    generated = emission.generated
    done = len(seq.log_probs)
    new_log_probs = seq.log_probs[done - generated : done] if generated else []
    if wanted.log_probs:
        out.append(("cum_log_probs", np.asarray([[sum(seq.log_probs[:done])]], dtype=np.float32)))
        out.append(("output_log_probs", np.asarray([[new_log_probs]], dtype=np.float32).reshape(1, 1, -1)))
    if wanted.context_logits:
        out.append(("context_logits", np.zeros((1, len(spec.prompt), vocab_size), dtype=logits_dtype)))
    if wanted.generation_logits:
        logits = np.zeros((1, 1, generated, vocab_size), dtype=logits_dtype)
        # the chosen token carries its log probability, the rest stay at zero
        chosen = seq.generated[done - generated : done] if generated else []
        for i, (token, log_prob) in enumerate(zip(chosen, new_log_probs, strict=True)):
            if 0 <= token < vocab_size:
                logits[0, 0, i, token] = log_prob
        out.append(("generation_logits", logits))
    if wanted.perf:
        for name, stamp in (
            ("arrival_time_ns", spec.arrival_ns),
            ("first_scheduled_time_ns", spec.first_scheduled_ns),
            ("first_token_time_ns", seq.first_token_ns),
            ("last_token_time_ns", seq.last_token_ns),
        ):
            out.append((name, np.asarray([[stamp]], dtype=np.int64)))
        for name, count in (
            ("kv_cache_alloc_new_blocks", seq.kv_total_blocks - seq.kv_reused_blocks),
            ("kv_cache_reused_blocks", seq.kv_reused_blocks),
            ("kv_cache_alloc_total_blocks", seq.kv_total_blocks),
            ("total_accepted_draft_tokens", 0),
            ("total_draft_tokens", 0),
        ):
            out.append((name, _i32([[count]])))
        out.append(("acceptance_rate", np.zeros((1, 1), dtype=np.float32)))
    if wanted.num_input:
        out.append(("num_input_tokens", _i32([[len(spec.prompt)]])))
    if wanted.num_output:
        # TRT-LLM 1.x counts the tokens of this response's output_ids: the prompt too when it is echoed
        out.append(("num_output_tokens", _i32([[len(tokens)]])))
    return out
