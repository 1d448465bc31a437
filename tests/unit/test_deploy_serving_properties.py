"""LMI serving.properties files mapped onto the build spec and the repository options."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtclient.server.deploy.build import Tools, plan_build
from trtclient.server.deploy.serving_properties import (
    map_lmi_options,
    parse_properties,
    read_serving_properties,
)
from trtclient.server.deploy.spec import SpecError, make_spec
from trtclient.server.deploy.versions import TrtllmVersion

# The shape of djl-serving's TensorRT-LLM examples (trt_llm_user_guide.md, configurations.md).
LMI_FILE = """\
engine=Python
option.mpi_mode=true
option.rolling_batch=trtllm
# model and parallelism
option.model_id=Meta-Llama-3-8B-Instruct
option.tensor_parallel_degree=2
option.dtype=fp16
option.max_rolling_batch_size=64
option.max_input_len=1024
option.max_output_len : 512
option.max_num_tokens=16384
option.kv_cache_free_gpu_mem_fraction=0.85
option.batch_scheduler_policy=guaranteed_no_evict
option.enable_kv_cache_reuse=true
option.num_engine_workers=2
option.use_fused_mlp=true
"""


def test_parse_properties_syntax() -> None:
    text = "! bang comment\n  a.b = 1 \nc: two words\n\nlong=first \\\n   second\nflag\nx=y=z\n"
    assert parse_properties(text) == {
        "a.b": "1",
        "c": "two words",
        "long": "first second",
        "flag": "",
        "x": "y=z",
    }


def test_lmi_file_maps_to_build_and_repository_options(tmp_path: Path) -> None:
    path = tmp_path / "serving.properties"
    path.write_text(LMI_FILE)
    mapped = read_serving_properties(path)
    assert mapped.build == {
        "model_dir": str(tmp_path / "Meta-Llama-3-8B-Instruct"),
        "tp_size": 2,
        "dtype": "float16",
        "max_batch_size": 64,
        "max_input_len": 1024,
        "max_output_len": 512,
        "max_num_tokens": 16384,
        "use_paged_context_fmha": True,  # KV-cache reuse needs engines built with paged context FMHA
        "workers": 2,
        "extra_build_args": ("--use_fused_mlp", "enable"),
    }
    assert mapped.repository == {
        "kv_cache_free_gpu_mem_fraction": 0.85,
        "batch_scheduler_policy": "guaranteed_no_evict",
        "enable_kv_cache_reuse": True,
    }
    assert mapped.ignored == ("engine", "option.mpi_mode", "option.rolling_batch")


def test_mapped_options_build_a_valid_plan(tmp_path: Path) -> None:
    mapped = map_lmi_options(parse_properties(LMI_FILE), base_dir=tmp_path)
    spec = make_spec(mapped.build, {"engine_dir": str(tmp_path / "engine")})
    tools = Tools(python="python3", convert_script=Path("convert_checkpoint.py"), trtllm_build="trtllm-build")
    convert, build = (step.argv for step in plan_build(spec, TrtllmVersion.parse("0.12.0"), tools).steps)
    assert convert[convert.index("--tp_size") + 1] == "2"
    assert build[build.index("--max_seq_len") + 1] == "1536"  # max_input_len 1024 + max_output_len 512
    assert build[build.index("--use_paged_context_fmha") + 1] == "enable"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("option.tensor_parallel_degree=max", "give the number of GPUs"),
        ("option.max_input_len=lots", "option.max_input_len=lots: expected a whole number"),
        ("option.kv_cache_free_gpu_mem_fraction=1.5", "expected a fraction"),
        ("option.kv_cache_free_gpu_mem_fraction=most", "expected a number"),
        ("option.enable_kv_cache_reuse=yes", "expected true or false"),
        ("option.dtype=int4", "expected one of"),
        ("option.batch_scheduler_policy=fifo", "max_utilization or guaranteed_no_evict"),
        ("option.quantize=awq", "quantize offline"),
        ("option.rolling_batch=vllm", "another LMI engine"),
        ("option.model_id=s3://bucket/llama", "download the checkpoint first"),
    ],
)
def test_options_that_cannot_be_honoured_are_refused(line: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        map_lmi_options(parse_properties(line), base_dir=Path("/x"), source="my.properties")
    assert str(caught.value).startswith("my.properties: ")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        read_serving_properties(tmp_path / "absent.properties")
