"""KV-pool sizing as TensorRT-LLM does it: a fraction of the device memory left after the weights."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from trtclient.errors import SetupError
from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.profiles import PROFILES, derive_kv_blocks, get_profile, kv_bytes_per_token
from trtclient.server.tokenizer import default_tokenizer_dir


def _load() -> ModuleType:
    folder = TEMPLATES_DIR / "tensorrt_llm" / "1"
    spec = importlib.util.spec_from_file_location("engine_settings_under_test", folder / "engine_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


es = _load()

# Llama-3-8B: 32 layers x 8 KV heads x head dim 128, K and V, fp16 -> 128 KiB a token.
LLAMA3_8B_TOKEN_BYTES = 2 * 32 * 8 * 128 * 2
# Orin 64 GB, 6.8 GB engine footprint, 0.9 of the rest, 64-token blocks, all in integers.
ORIN_BLOCKS_AT_0_9 = (64_000_000_000 - 6_800_000_000) * 9 // 10 // (LLAMA3_8B_TOKEN_BYTES * 64)


def test_llama3_8b_kv_bytes_per_token() -> None:
    assert kv_bytes_per_token(layers=32, kv_heads=8, head_dim=128, dtype_bytes=2) == 131072
    assert get_profile("orin-int4").kv_bytes_per_token == LLAMA3_8B_TOKEN_BYTES


def test_orin_profile_derives_the_pool_from_the_fraction() -> None:
    orin = get_profile("orin-int4")
    assert ORIN_BLOCKS_AT_0_9 == 6136  # about 48 GiB of KV cache, 392,704 tokens
    assert orin.kv_cache_blocks(0.9, 64) == ORIN_BLOCKS_AT_0_9
    assert orin.kv_cache_blocks(0.5, 64) == 57_200_000_000 // 2 // (LLAMA3_8B_TOKEN_BYTES * 64)
    assert orin.kv_cache_blocks(0.9, 32) == (57_200_000_000 * 9 // 10) // (LLAMA3_8B_TOKEN_BYTES * 32)
    assert get_profile("instant").kv_cache_blocks(0.9, 64) is None


def test_derive_kv_blocks_edges() -> None:
    assert derive_kv_blocks(10_000, 2_000, 1.0, 100, 8) == 10  # 8000 bytes / 800 a block
    assert derive_kv_blocks(10_000, 2_000, 0.5, 100, 8) == 5
    assert derive_kv_blocks(1_000, 2_000, 0.9, 100, 8) == 1  # weights fill the device: one block
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(SetupError, match="kv_cache_free_gpu_mem_fraction"):
            derive_kv_blocks(10_000, 2_000, bad, 100, 8)
        with pytest.raises(es.RequestError, match="kv_cache_free_gpu_mem_fraction"):
            es.derive_kv_blocks(10_000, 2_000, bad, 100, 8)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_engine_copy_agrees_with_the_profile(name: str, fraction: float) -> None:
    profile = get_profile(name)
    cpu = {"profile": profile.to_json()}
    build = {"max_batch_size": 4, "max_input_len": 100, "max_seq_len": 200}
    tokens, sizing = es.kv_cache_tokens(cpu, build, 64, fraction)
    expected = profile.kv_cache_blocks(fraction, 64)
    if expected is None:
        assert (tokens, sizing) == (4 * 200 // 2, "default")
    else:
        assert (tokens, sizing) == (expected * 64, f"kv_cache_free_gpu_mem_fraction={fraction}")


@pytest.fixture(scope="module")
def orin_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cpu_engine(
        tmp_path_factory.mktemp("orin"), tokenizer_dir=default_tokenizer_dir(), profile="orin-int4"
    )


def test_engine_dir_leaves_the_pool_to_the_fraction(orin_engine: Path) -> None:
    config = json.loads((orin_engine / "config.json").read_text())
    assert config["cpu_engine"]["kv_cache_tokens"] is None
    assert config["cpu_engine"]["profile"]["device_memory_gb"] == 64.0
    default = es.EngineSettings.load(orin_engine)
    assert default.limits.kv_cache_tokens == ORIN_BLOCKS_AT_0_9 * 64
    assert default.kv_cache_sizing == "kv_cache_free_gpu_mem_fraction=0.9"
    half = es.EngineSettings.load(orin_engine, 0.5)
    assert half.limits.kv_cache_tokens == 57_200_000_000 // 2 // (LLAMA3_8B_TOKEN_BYTES * 64) * 64


def test_kv_cache_tokens_overrides_the_fraction(tmp_path: Path) -> None:
    engine = build_cpu_engine(
        tmp_path, tokenizer_dir=default_tokenizer_dir(), profile="orin-int4", kv_cache_tokens=640
    )
    settings = es.EngineSettings.load(engine, 0.5)
    assert (settings.limits.kv_cache_tokens, settings.kv_cache_sizing) == (640, "kv_cache_tokens")


def test_profile_without_memory_keeps_the_old_default(tmp_path: Path) -> None:
    engine = build_cpu_engine(
        tmp_path, tokenizer_dir=default_tokenizer_dir(), profile="instant", max_batch_size=4, max_seq_len=2048
    )
    settings = es.EngineSettings.load(engine, 0.5)
    assert (settings.limits.kv_cache_tokens, settings.kv_cache_sizing) == (4 * 2048 // 2, "default")
