"""The bundled model templates carry the newest upstream TensorRT-LLM interface and render to valid configs.

Every rendered ``config.pbtxt`` is parsed as a Triton ``ModelConfig`` (protobuf text format), which catches
syntax errors before a server does. The expected names, types and dims below are written from the
protocol notes (upstream ``triton_backend/all_models/inflight_batcher_llm``), not read from the templates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.render import (
    RenderResult,
    TemplateError,
    render_config,
    render_repository,
)
from trtclient.server.repository_options import RepositoryOptions

ModelConfig = model_config_pb2.ModelConfig
Config = Any  # a parsed ModelConfig message (protobuf classes carry no type stubs)
DataType = model_config_pb2.DataType

MODELS = ("ensemble", "postprocessing", "preprocessing", "tensorrt_llm", "tensorrt_llm_bls")
FIXTURE_R24_04 = Path(__file__).parent / "fixtures" / "r24_04_inflight_batcher_llm"

# "Latest TL ensemble inputs", in the order the protocol notes list them.
LATEST_ENSEMBLE_INPUTS = [
    "text_input", "decoder_text_input", "max_tokens", "num_return_sequences", "bad_words", "stop_words",
    "exclude_input_in_output", "end_id", "pad_id", "top_k", "top_p", "temperature", "length_penalty",
    "repetition_penalty", "min_tokens", "presence_penalty", "frequency_penalty", "seed", "return_log_probs",
    "return_context_logits", "return_generation_logits", "return_perf_metrics", "return_num_input_tokens",
    "return_num_output_tokens", "beam_width", "stream", "prompt_embedding_table", "prompt_table_extra_id",
    "prompt_vocab_size", "embedding_bias_words", "embedding_bias_weights", "lora_task_id", "lora_weights",
    "lora_config", "guided_decoding_guide_type", "guided_decoding_guide",
]  # fmt: skip

# name -> (data type, dims); every input but text_input and max_tokens is optional.
ENSEMBLE_INPUT_TYPES: dict[str, tuple[str, list[int]]] = {
    "text_input": ("TYPE_STRING", [1]),
    "decoder_text_input": ("TYPE_STRING", [1]),
    "max_tokens": ("TYPE_INT32", [1]),
    "num_return_sequences": ("TYPE_INT32", [1]),
    "bad_words": ("TYPE_STRING", [-1]),
    "stop_words": ("TYPE_STRING", [-1]),
    "exclude_input_in_output": ("TYPE_BOOL", [1]),
    "end_id": ("TYPE_INT32", [1]),
    "pad_id": ("TYPE_INT32", [1]),
    "top_k": ("TYPE_INT32", [1]),
    "top_p": ("TYPE_FP32", [1]),
    "temperature": ("TYPE_FP32", [1]),
    "length_penalty": ("TYPE_FP32", [1]),
    "repetition_penalty": ("TYPE_FP32", [1]),
    "min_tokens": ("TYPE_INT32", [1]),
    "presence_penalty": ("TYPE_FP32", [1]),
    "frequency_penalty": ("TYPE_FP32", [1]),
    "seed": ("TYPE_UINT64", [1]),
    "return_log_probs": ("TYPE_BOOL", [1]),
    "return_context_logits": ("TYPE_BOOL", [1]),
    "return_generation_logits": ("TYPE_BOOL", [1]),
    "return_perf_metrics": ("TYPE_BOOL", [1]),
    "return_num_input_tokens": ("TYPE_BOOL", [1]),
    "return_num_output_tokens": ("TYPE_BOOL", [1]),
    "beam_width": ("TYPE_INT32", [1]),
    "stream": ("TYPE_BOOL", [1]),
    "prompt_embedding_table": ("TYPE_FP16", [-1, -1]),
    "prompt_table_extra_id": ("TYPE_UINT64", [1]),
    "prompt_vocab_size": ("TYPE_INT32", [1]),
    "embedding_bias_words": ("TYPE_STRING", [-1]),
    "embedding_bias_weights": ("TYPE_FP32", [-1]),
    "lora_task_id": ("TYPE_UINT64", [1]),
    "lora_weights": ("TYPE_FP16", [-1, -1]),
    "lora_config": ("TYPE_INT32", [-1, 3]),
    "guided_decoding_guide_type": ("TYPE_STRING", [1]),
    "guided_decoding_guide": ("TYPE_STRING", [1]),
}

ENSEMBLE_OUTPUT_TYPES: dict[str, tuple[str, list[int]]] = {
    "text_output": ("TYPE_STRING", [-1]),
    "cum_log_probs": ("TYPE_FP32", [-1]),
    "output_log_probs": ("TYPE_FP32", [-1, -1]),
    "context_logits": ("TYPE_FP32", [-1, -1]),  # ${logits_datatype}, filled with TYPE_FP32
    "generation_logits": ("TYPE_FP32", [-1, -1, -1]),
    "batch_index": ("TYPE_INT32", [1]),
    "sequence_index": ("TYPE_INT32", [1]),
    "kv_cache_alloc_new_blocks": ("TYPE_INT32", [1]),
    "kv_cache_reused_blocks": ("TYPE_INT32", [1]),
    "kv_cache_alloc_total_blocks": ("TYPE_INT32", [1]),
    "arrival_time_ns": ("TYPE_INT64", [1]),
    "first_scheduled_time_ns": ("TYPE_INT64", [1]),
    "first_token_time_ns": ("TYPE_INT64", [1]),
    "last_token_time_ns": ("TYPE_INT64", [1]),
    "acceptance_rate": ("TYPE_FP32", [1]),
    "total_accepted_draft_tokens": ("TYPE_INT32", [1]),
    "total_draft_tokens": ("TYPE_INT32", [1]),
    "num_input_tokens": ("TYPE_INT32", [1]),
    "num_output_tokens": ("TYPE_INT32", [1]),
}


def _names(text: str) -> set[str]:
    return set(text.split())


# Placeholders each upstream file contains (parameter values and structure).
PLACEHOLDERS = {
    "ensemble": _names("triton_max_batch_size logits_datatype"),
    "preprocessing": _names(
        """triton_max_batch_size max_queue_delay_microseconds max_queue_size tokenizer_dir
        add_special_tokens multimodal_model_path engine_dir max_num_images preprocessing_instance_count"""
    ),
    "postprocessing": _names(
        "triton_max_batch_size tokenizer_dir skip_special_tokens postprocessing_instance_count"
    ),
    "tensorrt_llm_bls": _names(
        """triton_max_batch_size decoupled_mode prompt_embedding_table_data_type logits_datatype
        accumulate_tokens tensorrt_llm_model_name tensorrt_llm_draft_model_name multimodal_encoders_name
        bls_instance_count"""
    ),
    "tensorrt_llm": _names(
        """triton_backend triton_max_batch_size decoupled_mode max_queue_delay_microseconds max_queue_size
        encoder_input_features_data_type logits_datatype prompt_embedding_table_data_type max_beam_width
        batching_strategy engine_dir encoder_engine_dir max_tokens_in_paged_kv_cache
        max_attention_window_size sink_token_length batch_scheduler_policy
        kv_cache_free_gpu_mem_fraction cross_kv_cache_fraction kv_cache_host_memory_bytes
        kv_cache_onboard_blocks enable_trt_overlap exclude_input_in_output cancellation_check_period_ms
        stats_check_period_ms iter_stats_max_iterations request_stats_max_iterations
        enable_kv_cache_reuse normalize_log_probs enable_chunked_context gpu_device_ids participant_ids
        num_nodes lora_cache_optimal_adapter_size lora_cache_max_adapter_size
        lora_cache_gpu_memory_fraction lora_cache_host_memory_bytes lora_prefetch_dir decoding_mode
        lookahead_window_size lookahead_ngram_size lookahead_verification_set_size medusa_choices
        eagle_choices gpu_weights_percent enable_context_fmha_fp32_acc multi_block_mode cuda_graph_mode
        cuda_graph_cache_size speculative_decoding_fast_logits tokenizer_dir guided_decoding_backend
        xgrammar_tokenizer_info_path"""
    ),
}

# Placeholders outside parameters blocks: without a value the file does not parse.
STRUCTURAL = {
    "ensemble": _names("triton_max_batch_size logits_datatype"),
    "preprocessing": _names(
        "triton_max_batch_size max_queue_delay_microseconds max_queue_size preprocessing_instance_count"
    ),
    "postprocessing": _names("triton_max_batch_size postprocessing_instance_count"),
    "tensorrt_llm_bls": _names(
        """triton_max_batch_size decoupled_mode prompt_embedding_table_data_type logits_datatype
        bls_instance_count"""
    ),
    "tensorrt_llm": _names(
        """triton_backend triton_max_batch_size decoupled_mode max_queue_delay_microseconds max_queue_size
        encoder_input_features_data_type logits_datatype prompt_embedding_table_data_type"""
    ),
}

# Parameters the backends need filled: engine directory, batching strategy, tokenizer.
NEEDED_PARAMETERS = {
    "preprocessing": _names("tokenizer_dir engine_dir"),
    "postprocessing": _names("tokenizer_dir"),
    "tensorrt_llm": _names("engine_dir batching_strategy tokenizer_dir"),
}


def _options(backend: str) -> RepositoryOptions:
    return RepositoryOptions(
        engine_dir="/srv/engines/llama:int4,tp1",
        tokenizer_dir="/srv/tokenizer",
        triton_backend=backend,
        preprocessing_instance_count=2,
        postprocessing_instance_count=3,
    )


def _parse(path: Path) -> Config:
    return text_format.Parse(path.read_text(encoding="utf-8"), ModelConfig())


def _render(source: Path, out: Path, options: RepositoryOptions) -> tuple[RenderResult, dict[str, Config]]:
    result = render_repository(source, out, options.to_values())
    return result, {model.name: _parse(model.config_path) for model in result.models}


@pytest.fixture(scope="module", params=["python", "tensorrtllm"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Config]:
    """The bundled templates rendered for the embedded CPU engine and for the GPU engine."""
    out = tmp_path_factory.mktemp(f"repository-{request.param}")
    _, configs = _render(TEMPLATES_DIR, out, _options(request.param))
    return configs


def _dtype(name: str) -> int:
    return int(DataType.Value(name))


def _inputs(config: Config) -> dict[str, Any]:
    return {tensor.name: tensor for tensor in config.input}


def _outputs(config: Config) -> dict[str, Any]:
    return {tensor.name: tensor for tensor in config.output}


def test_the_five_models_render_and_parse_as_model_configs(rendered: dict[str, Config]) -> None:
    assert sorted(rendered) == list(MODELS)
    for name, config in rendered.items():
        assert config.name == name
        assert config.max_batch_size == 64


def test_ensemble_inputs_are_the_newest_upstream_list_exactly(rendered: dict[str, Config]) -> None:
    assert [tensor.name for tensor in rendered["ensemble"].input] == LATEST_ENSEMBLE_INPUTS


def test_ensemble_input_types_dims_and_optional_flags(rendered: dict[str, Config]) -> None:
    for tensor in rendered["ensemble"].input:
        dtype, dims = ENSEMBLE_INPUT_TYPES[tensor.name]
        assert (tensor.data_type, list(tensor.dims)) == (_dtype(dtype), dims), tensor.name
        assert tensor.optional == (tensor.name not in ("text_input", "max_tokens")), tensor.name


def test_ensemble_outputs_are_the_newest_upstream_set(rendered: dict[str, Config]) -> None:
    outputs = [tensor.name for tensor in rendered["ensemble"].output]
    assert sorted(outputs) == sorted(ENSEMBLE_OUTPUT_TYPES)
    assert len(outputs) == len(set(outputs)), "an output is declared twice"
    for tensor in rendered["ensemble"].output:
        dtype, dims = ENSEMBLE_OUTPUT_TYPES[tensor.name]
        assert (tensor.data_type, list(tensor.dims)) == (_dtype(dtype), dims), tensor.name


def test_renamed_inputs_carry_their_newest_names(rendered: dict[str, Config]) -> None:
    for model in ("ensemble", "tensorrt_llm", "tensorrt_llm_bls"):
        names = set(_inputs(rendered[model]))
        assert {"min_tokens", "seed", "return_num_input_tokens", "return_num_output_tokens"} <= names, model
        assert "return_kv_cache_reuse_stats" not in names, model
        # the engine also takes the names before TRT-LLM 0.20, which older ensembles and BLS send to it
        legacy = {"min_length", "random_seed"}
        assert (names & legacy == legacy) if model == "tensorrt_llm" else not names & legacy, model


def test_ensemble_steps_are_wired_like_triton_checks_them(rendered: dict[str, Config]) -> None:
    ensemble = rendered["ensemble"]
    # tensor name -> data type, starting from the ensemble inputs and growing with each step's outputs
    available = {tensor.name: tensor.data_type for tensor in ensemble.input}
    produced_outputs: list[str] = []
    for step in ensemble.ensemble_scheduling.step:
        model = rendered[step.model_name]
        inputs, outputs = _inputs(model), _outputs(model)
        for step_input, tensor in step.input_map.items():
            assert step_input in inputs, f"{step.model_name} has no input {step_input}"
            assert tensor in available, f"{tensor} is used by {step.model_name} before it exists"
            assert available[tensor] == inputs[step_input].data_type, (
                f"{tensor} -> {step.model_name}.{step_input}"
            )
        required = {name for name, tensor in inputs.items() if not tensor.optional}
        assert required <= set(step.input_map), f"{step.model_name} misses {required - set(step.input_map)}"
        for step_output, tensor in step.output_map.items():
            assert step_output in outputs, f"{step.model_name} has no output {step_output}"
            assert tensor not in available, f"{tensor} is produced twice"
            available[tensor] = outputs[step_output].data_type
            produced_outputs.append(tensor)
    for tensor in ensemble.output:
        assert tensor.name in produced_outputs, f"no step produces {tensor.name}"
        assert available[tensor.name] == tensor.data_type, tensor.name


def test_user_names_map_to_engine_names(rendered: dict[str, Config]) -> None:
    steps = {step.model_name: step for step in rendered["ensemble"].ensemble_scheduling.step}
    engine_inputs = dict(steps["tensorrt_llm"].input_map)
    assert engine_inputs["runtime_top_k"] == "top_k"
    assert engine_inputs["runtime_top_p"] == "top_p"
    assert engine_inputs["len_penalty"] == "length_penalty"
    assert engine_inputs["streaming"] == "stream"
    assert engine_inputs["min_tokens"] == "min_tokens"
    assert engine_inputs["seed"] == "seed"
    assert engine_inputs["input_ids"] == steps["preprocessing"].output_map["INPUT_ID"]
    assert dict(steps["preprocessing"].input_map)["QUERY"] == "text_input"
    assert dict(steps["preprocessing"].input_map)["REQUEST_OUTPUT_LEN"] == "max_tokens"
    assert dict(steps["postprocessing"].output_map) == {"OUTPUT": "text_output"}


def test_bls_offers_the_ensemble_interface_and_more(rendered: dict[str, Config]) -> None:
    ensemble, bls = _inputs(rendered["ensemble"]), _inputs(rendered["tensorrt_llm_bls"])
    for name, tensor in ensemble.items():
        assert name in bls, name
        assert (bls[name].data_type, list(bls[name].dims)) == (tensor.data_type, list(tensor.dims)), name
    assert set(bls) - set(ensemble) == {
        "image_input", "image_bytes_input", "image_url_input", "image_sizes_input", "video_bytes_input",
        "num_draft_tokens", "use_draft_logits",
    }  # fmt: skip
    assert [t.name for t in rendered["tensorrt_llm_bls"].output] == [
        t.name for t in rendered["ensemble"].output
    ]
    assert rendered["tensorrt_llm_bls"].model_transaction_policy.decoupled
    assert rendered["tensorrt_llm_bls"].backend == "python"


def test_engine_model_header_and_parameters(rendered: dict[str, Config]) -> None:
    engine = rendered["tensorrt_llm"]
    assert engine.backend in ("python", "tensorrtllm")
    assert engine.model_transaction_policy.decoupled
    assert list(engine.dynamic_batching.preferred_batch_size) == [64]
    assert engine.dynamic_batching.max_queue_delay_microseconds == 0
    assert engine.dynamic_batching.default_queue_policy.max_queue_size == 0
    assert [(group.count, group.kind) for group in engine.instance_group] == [
        (1, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]
    parameters = {key: value.string_value for key, value in engine.parameters.items()}
    assert parameters["gpt_model_path"] == "/srv/engines/llama:int4,tp1"
    assert parameters["gpt_model_type"] == "inflight_fused_batching"
    assert parameters["max_beam_width"] == "1"
    assert parameters["tokenizer_dir"] == "/srv/tokenizer"
    assert parameters["kv_cache_free_gpu_mem_fraction"] == "${kv_cache_free_gpu_mem_fraction}"
    required = [tensor.name for tensor in engine.input if not tensor.optional]
    assert required == ["input_lengths", "request_output_len"]


def test_the_backend_placeholder_picks_the_engine(tmp_path: Path) -> None:
    for backend in ("python", "tensorrtllm"):
        _, configs = _render(TEMPLATES_DIR, tmp_path / backend, _options(backend))
        assert configs["tensorrt_llm"].backend == backend
        assert configs["preprocessing"].backend == "python"


def test_pre_and_postprocessing_batch_dynamically(rendered: dict[str, Config]) -> None:
    pre, post = rendered["preprocessing"], rendered["postprocessing"]
    assert pre.HasField("dynamic_batching") and post.HasField("dynamic_batching")
    assert list(pre.dynamic_batching.preferred_batch_size) == [64]
    assert list(post.dynamic_batching.preferred_batch_size) == []
    assert [group.count for group in pre.instance_group] == [2]
    assert [group.count for group in post.instance_group] == [3]
    assert {key: value.string_value for key, value in post.parameters.items()}[
        "tokenizer_dir"
    ] == "/srv/tokenizer"


def test_each_template_holds_the_upstream_placeholders() -> None:
    for name in MODELS:
        rendered = render_config((TEMPLATES_DIR / name / "config.pbtxt").read_text(), {})
        assert set(rendered.keys) == PLACEHOLDERS[name], name
        expected_missing = STRUCTURAL[name] | NEEDED_PARAMETERS.get(name, set())
        assert {item.key for item in rendered.missing} == expected_missing, name


def test_rendering_without_values_names_every_model(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="needs") as caught:
        render_repository(TEMPLATES_DIR, tmp_path / "out", {})
    for name in MODELS:
        assert f"model {name!r} needs values for" in str(caught.value)


def test_the_older_r24_04_layout_renders_with_the_same_options(tmp_path: Path) -> None:
    result, configs = _render(FIXTURE_R24_04, tmp_path / "old", _options("python"))
    engine = configs["tensorrt_llm"]
    assert engine.backend == "tensorrtllm"  # spelled out in the old template, not a placeholder
    assert {"min_length", "random_seed"} <= set(_inputs(engine))
    assert "min_tokens" not in _inputs(engine)
    assert not engine.dynamic_batching.HasField("default_queue_policy")
    assert {key: value.string_value for key, value in engine.parameters.items()}["gpt_model_type"] == (
        "inflight_fused_batching"
    )
    assert "triton_backend" in result.unused_values and "max_queue_size" in result.unused_values
    assert result.model("tensorrt_llm").defaults_left == (
        "batch_scheduler_policy",
        "enable_trt_overlap",
        "kv_cache_free_gpu_mem_fraction",
    )
    assert (tmp_path / "old" / "ensemble" / "1").is_dir()
    model_py = tmp_path / "old" / "preprocessing" / "1" / "model.py"
    assert model_py.read_bytes() == (FIXTURE_R24_04 / "preprocessing" / "1" / "model.py").read_bytes()
    assert "${tokenizer_dir}" in model_py.read_text()
    engine_step = configs["ensemble"].ensemble_scheduling.step[1]
    assert (engine_step.model_name, engine_step.input_map["min_length"]) == ("tensorrt_llm", "min_length")
