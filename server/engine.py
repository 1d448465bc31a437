"""The CPU engine directory: what the embedded ``tensorrt_llm`` model loads instead of a TensorRT engine.

Its ``config.json`` has TRT-LLM's engine layout (``pretrained_config`` with ``mapping``, ``build_config``
with max_batch_size, max_input_len, max_seq_len, max_num_tokens, max_beam_width), so the launcher reads CPU
and GPU engines the same way, plus a ``cpu_engine`` section of its own: the timing profile, the KV-cache
capacity in tokens (null: derived by the engine from the profile's memory figures and
``kv_cache_free_gpu_mem_fraction``), an optional end-of-sequence probability, and the text generator's tables.

The generator is a small Markov chain over the default tokenizer's ids, built from the bundled corpus, so
generated text reads as text and is deterministic for a given seed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from trtclient.server.profiles import Profile, get_profile
from trtclient.server.tokenizer import EOS, corpus_text

__all__ = ["CPU_ENGINE_ARCHITECTURE", "build_cpu_engine", "markov_tables"]

CPU_ENGINE_ARCHITECTURE = "TrtclientCpuMarkovForCausalLM"
TABLES_FILE = "markov.json"


def markov_tables(tokenizer_dir: Path) -> dict[str, Any]:
    """Successor tables (order 1 and 2) of the corpus, tokenized with the tokenizer in ``tokenizer_dir``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    special = {tokenizer.token_to_id(EOS), 0, 1}
    first: dict[int, list[int]] = defaultdict(list)
    second: dict[str, list[int]] = defaultdict(list)
    starts: list[int] = []
    spaced_starts: list[int] = []
    for paragraph in corpus_text().split("\n\n"):
        text = " ".join(paragraph.split())
        ids = [i for i in tokenizer.encode(text).ids if i not in special]
        if not ids:
            continue
        starts.append(ids[0])
        spaced_starts.append(tokenizer.encode(" " + text).ids[0])
        for a, b in zip(ids, ids[1:], strict=False):
            first[a].append(b)
        for a, b, c in zip(ids, ids[1:], ids[2:], strict=False):
            second[f"{a},{b}"].append(c)
    return {
        "order": 2,
        "vocab_size": tokenizer.get_vocab_size(),
        "starts": starts,
        "spaced_starts": spaced_starts,
        "next1": {str(k): v for k, v in first.items()},
        "next2": dict(second),
    }


def build_cpu_engine(
    out_dir: Path,
    *,
    tokenizer_dir: Path,
    profile: str | Profile = "instant",
    max_batch_size: int = 64,
    max_input_len: int = 1024,
    max_seq_len: int = 2048,
    max_num_tokens: int = 8192,
    kv_cache_tokens: int | None = None,
    eos_probability: float = 0.0,
    tokens_per_block: int = 64,
    lora_cache_adapters: int = 8,
    lora_load_ms: float | None = None,
) -> Path:
    """Write a CPU engine directory to ``out_dir`` and return it.

    ``tokens_per_block`` is the paged KV cache's block size (``trtllm-build --tokens_per_block``, 64 by
    default), kept where TRT-LLM keeps it: ``build_config.plugin_config.tokens_per_block``.
    ``lora_cache_adapters`` adapters fit the engine's device LoRA cache; loading one that is not there
    adds ``lora_load_ms`` to the iteration that admits its request (default: 0 for a profile without
    timing, else 20 ms, this project's assumption, not a published figure).
    """
    timing = get_profile(profile) if isinstance(profile, str) else profile
    if max_seq_len <= max_input_len:
        raise ValueError(f"max_seq_len ({max_seq_len}) must exceed max_input_len ({max_input_len})")
    if tokens_per_block < 1:
        raise ValueError(f"tokens_per_block must be at least 1, got {tokens_per_block}")
    if not 0.0 <= eos_probability < 1.0:
        raise ValueError(f"eos_probability must be in [0, 1), got {eos_probability}")
    if kv_cache_tokens is not None and kv_cache_tokens < 1:
        raise ValueError(f"kv_cache_tokens must be at least 1, got {kv_cache_tokens}")
    # Unset, the engine sizes the pool itself: from kv_cache_free_gpu_mem_fraction of the profile's
    # device memory after the weights as TensorRT-LLM does, or max batch x max_seq_len / 2 for a profile
    # without memory figures (engine_settings.kv_cache_tokens).
    tables = markov_tables(tokenizer_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TABLES_FILE).write_text(json.dumps(tables))
    config = {
        "version": "trtclient-cpu-1",
        "pretrained_config": {
            "architecture": CPU_ENGINE_ARCHITECTURE,
            "dtype": "float32",
            "vocab_size": tables["vocab_size"],
            "hidden_size": 0,
            "num_hidden_layers": 0,
            "num_attention_heads": 0,
            "max_position_embeddings": max_seq_len,
            "mapping": {"world_size": 1, "tp_size": 1, "pp_size": 1},
            "quantization": {"quant_algo": None, "kv_cache_quant_algo": None},
        },
        "build_config": {
            "max_batch_size": max_batch_size,
            "max_beam_width": 1,
            "max_input_len": max_input_len,
            "max_seq_len": max_seq_len,
            "max_num_tokens": max_num_tokens,
            "kv_cache_type": "paged",
            "plugin_config": {
                "paged_kv_cache": True,
                "remove_input_padding": True,
                "tokens_per_block": tokens_per_block,
            },
        },
        "cpu_engine": {
            "profile": timing.to_json(),
            "kv_cache_tokens": kv_cache_tokens,
            "eos_probability": eos_probability,
            "lora_cache_adapters": lora_cache_adapters,
            "lora_load_ms": (20.0 if timing.context_ms else 0.0) if lora_load_ms is None else lora_load_ms,
            "tables": TABLES_FILE,
            "tokenizer_dir": str(tokenizer_dir),
        },
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out_dir
