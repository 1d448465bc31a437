"""The CPU engine's paged KV cache: block reuse across requests, LRU eviction, and its effect on the
scheduler's context time (the engine's modules are loaded from their files, as Triton does)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.tokenizer import default_tokenizer_dir

ENGINE_DIR = TEMPLATES_DIR / "tensorrt_llm" / "1"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_kv_under_test", ENGINE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


kv = _load("kv_cache")
ce = _load("cpu_engine")


def test_a_shared_prefix_reuses_its_full_blocks_only() -> None:
    cache = kv.KvCache(100, 4, reuse=True)
    first = cache.allocate(list(range(10)), 2)
    assert (first.reused, first.total) == (0, 3)
    cache.release(first, list(range(10)) + [50, 51])
    # same first 8 tokens (two full blocks), different tail
    second = cache.allocate([*range(8), 99, 98, 97], 1)
    assert (second.reused, second.total) == (2, 3)
    assert cache.reused_blocks == 2


def test_a_prompt_made_only_of_cached_blocks_still_computes_its_last_block() -> None:
    cache = kv.KvCache(100, 4, reuse=True)
    prompt = list(range(8))
    cache.release(cache.allocate(prompt, 1), prompt + [7])
    assert len(cache.matched(prompt)) == 1  # block 2 holds the last token, which is computed again


def test_generated_tokens_are_cached_for_the_next_turn() -> None:
    cache = kv.KvCache(100, 4, reuse=True)
    turn1 = cache.allocate([1, 2, 3], 5)
    cache.release(turn1, [1, 2, 3, 10, 11, 12, 13, 14])
    turn2 = cache.allocate([1, 2, 3, 10, 11, 12, 13, 14, 20, 21], 2)
    assert turn2.reused == 2


def test_without_reuse_nothing_is_shared_and_all_blocks_come_back() -> None:
    cache = kv.KvCache(100, 4, reuse=False)
    a = cache.allocate(list(range(10)), 2)
    cache.release(a, list(range(12)))
    b = cache.allocate(list(range(10)), 2)
    assert b.reused == 0
    cache.release(b, list(range(12)))
    assert cache.used == 0 and not cache.idle


def test_idle_blocks_are_evicted_least_recently_used_first() -> None:
    cache = kv.KvCache(4, 2, reuse=True)
    old, new = [1, 2, 3], [7, 8, 9]
    cache.release(cache.allocate(old, 1), old + [4])  # caches 2 blocks
    cache.release(cache.allocate(new, 1), new + [4])  # caches 2 more: the pool is full of idle blocks
    assert len(cache.idle) == 4
    taken = cache.allocate([20, 21, 22], 1)  # needs 2 blocks: the two oldest go
    assert taken is not None and cache.evicted_blocks == 2
    assert cache.matched(new + [0]) and not cache.matched(old + [0])


def test_a_sequence_that_does_not_fit_waits_unless_forced() -> None:
    cache = kv.KvCache(2, 2, reuse=True)
    assert cache.allocate([1, 2, 3, 4, 5], 1) is None
    assert cache.allocate([1, 2, 3, 4, 5], 1, force=True) is not None


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine")
    return build_cpu_engine(out, tokenizer_dir=default_tokenizer_dir(), profile="orin-int4", max_batch_size=4)


def _context_seconds(scheduler: Any, prompt: list[int]) -> float:
    scheduler.submit(
        ce.RequestSpec(prompt=prompt, max_new_tokens=2, end_id=2, streaming=True, exclude_input=True)
    )
    admitted = scheduler.admit()
    seconds = scheduler.iteration_seconds(admitted)
    while not scheduler.idle:
        scheduler.step()
        scheduler.collect()
        scheduler.admit()
    return float(seconds)


@pytest.mark.parametrize("reuse", [True, False])
def test_the_context_phase_counts_only_uncached_tokens(engine_dir: Path, reuse: bool) -> None:
    scheduler = ce.Scheduler(ce.EngineSettings.load(engine_dir), kv_cache_reuse=reuse)
    shared = list(range(100, 612))  # 8 blocks of 64
    first = _context_seconds(scheduler, [*shared, 5, 6, 7])
    second = _context_seconds(scheduler, [*shared, 8, 9, 10])
    assert (second < first / 2) is reuse
    assert scheduler.kv_cache.reused_blocks == (8 if reuse else 0)


def test_a_prompt_s_blocks_are_reusable_once_its_context_phase_ran() -> None:
    cache = kv.KvCache(100, 4, reuse=True)
    running = cache.allocate(list(range(10)), 5)
    assert not cache.matched(list(range(10)))
    cache.store_context(running, list(range(10)))
    second = cache.allocate(list(range(10)), 5)  # the first is still decoding
    assert second.reused == 2
    assert cache.used == 2 + 2 + 2  # two shared blocks, two private blocks each (15 tokens: 4 blocks)
    cache.release(running, list(range(10)) + [1] * 5)
    cache.release(second, list(range(10)) + [2] * 5)
    assert cache.used == 0
