"""The repository renderer and the engine config reader, on small templates written by each test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trtclient.errors import SetupError
from trtclient.server.engine_config import (
    EngineConfigError,
    engine_values,
    parse_engine_config,
    read_engine_config,
)
from trtclient.server.render import (
    TemplateError,
    fill_template,
    render_config,
    render_repository,
    template_keys,
)
from trtclient.server.repository_options import RepositoryOptions

# --- fill_template / template_keys ----------------------------------------------------------------


def test_fill_leaves_placeholders_without_a_value_verbatim() -> None:
    text = 'a: ${x}\nb: "${y}"\nc: ${z}\n'
    assert fill_template(text, {"x": "1"}) == 'a: 1\nb: "${y}"\nc: ${z}\n'


def test_fill_takes_values_with_colons_commas_and_slashes() -> None:
    text = 'path: "${engine_dir}" ids: "${gpu_device_ids}"'
    values = {"engine_dir": "/srv/engines:v1/llama,tp2", "gpu_device_ids": "0,1"}
    assert fill_template(text, values) == 'path: "/srv/engines:v1/llama,tp2" ids: "0,1"'


def test_fill_keeps_text_that_is_not_a_placeholder() -> None:
    text = 'x: "${not-a-key}" y: "${}" price: $$5'
    assert fill_template(text, {"not": "1", "a": "2"}) == 'x: "${not-a-key}" y: "${}" price: $5'


def test_template_keys_lists_braced_and_bare_names_but_not_invalid_ones() -> None:
    text = "a ${one} b $two c ${3x} d $$four e ${one}\n# ${in_comment}\n"
    assert template_keys(text) == {"one", "two", "in_comment"}


# --- one file: what is filled, what is missing, what is left to defaults -------------------------


def _parameter(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}", value: {{ string_value: "{value}" }} }}\n'


def test_a_file_is_filled_with_only_the_keys_it_contains() -> None:
    text = "max_batch_size: ${triton_max_batch_size}\n" + _parameter("gpt_model_path", "${engine_dir}")
    rendered = render_config(text, {"triton_max_batch_size": "8", "engine_dir": "/e", "tokenizer_dir": "/t"})
    assert rendered.keys == {"triton_max_batch_size", "engine_dir"}
    assert rendered.filled == {"triton_max_batch_size", "engine_dir"}
    assert rendered.text == "max_batch_size: 8\n" + _parameter("gpt_model_path", "/e")
    assert rendered.missing == ()


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('backend: "${triton_backend}"\n', "triton_backend"),
        ("max_batch_size: ${triton_max_batch_size}\n", "triton_max_batch_size"),
        ("model_transaction_policy { decoupled: ${decoupled_mode} }\n", "decoupled_mode"),
        ('input [ { name: "x", data_type: ${logits_datatype}, dims: [ -1 ] } ]\n', "logits_datatype"),
        (
            "dynamic_batching { preferred_batch_size: [ ${triton_max_batch_size} ] }\n",
            "triton_max_batch_size",
        ),
        (
            "dynamic_batching { default_queue_policy { max_queue_size: ${max_queue_size} } }\n",
            "max_queue_size",
        ),
        ("instance_group [ { count: ${bls_instance_count}, kind: KIND_CPU } ]\n", "bls_instance_count"),
    ],
)
def test_a_structural_placeholder_left_is_missing(snippet: str, key: str) -> None:
    rendered = render_config('name: "m"\n' + snippet, {})
    assert [(item.key, item.line, item.parameter) for item in rendered.missing] == [(key, 2, None)]
    assert rendered.defaults_left == ()


@pytest.mark.parametrize(
    ("parameter", "key"),
    [
        ("gpt_model_path", "engine_dir"),
        ("gpt_model_type", "batching_strategy"),
        ("tokenizer_dir", "tokenizer_dir"),
    ],
)
def test_a_parameter_the_backend_needs_is_missing_when_unfilled(parameter: str, key: str) -> None:
    spread_out = (
        f'parameters: {{\n  key: "{parameter}"\n  value: {{\n    string_value: "${{{key}}}"\n  }}\n}}\n'
    )
    for text in (_parameter(parameter, "${" + key + "}"), spread_out):
        rendered = render_config(text, {})
        assert [(item.key, item.parameter) for item in rendered.missing] == [(key, parameter)]


def test_other_unfilled_parameters_are_defaults_not_errors() -> None:
    text = (
        'backend: "python"\n'
        + _parameter("kv_cache_free_gpu_mem_fraction", "${kv_cache_free_gpu_mem_fraction}")
        + _parameter("enable_kv_cache_reuse", "${enable_kv_cache_reuse}")
        + _parameter("gpt_model_type", "${batching_strategy}")
    )
    rendered = render_config(text, {"batching_strategy": "inflight_fused_batching"})
    assert rendered.missing == ()
    assert rendered.defaults_left == ("enable_kv_cache_reuse", "kv_cache_free_gpu_mem_fraction")
    assert '"${kv_cache_free_gpu_mem_fraction}"' in rendered.text


def test_placeholders_in_comments_are_filled_but_never_required() -> None:
    text = '# backend: "${triton_backend}"\nname: "m"\n'
    rendered = render_config(text, {})
    assert rendered.missing == () and rendered.defaults_left == ()
    assert rendered.keys == {"triton_backend"}
    assert render_config(text, {"triton_backend": "python"}).text.startswith('# backend: "python"')


def test_a_value_a_pbtxt_string_cannot_hold_is_refused() -> None:
    text = _parameter("tokenizer_dir", "${tokenizer_dir}")
    with pytest.raises(TemplateError, match="tokenizer_dir"):
        render_config(text, {"tokenizer_dir": 'my "tokenizer"'})
    # a bad value for a key the file does not contain is not this file's business
    assert render_config(text, {"tokenizer_dir": "/t", "engine_dir": 'a"b'}).missing == ()


# --- a repository ---------------------------------------------------------------------------------

ENGINE_CONFIG = (
    'name: "engine"\nbackend: "${triton_backend}"\nmax_batch_size: ${triton_max_batch_size}\n'
    + _parameter("gpt_model_path", "${engine_dir}")
    + _parameter("gpt_model_type", "${batching_strategy}")
    + _parameter("kv_cache_free_gpu_mem_fraction", "${kv_cache_free_gpu_mem_fraction}")
)
PRE_CONFIG = (
    'name: "pre"\nbackend: "python"\nmax_batch_size: ${triton_max_batch_size}\n'
    + _parameter("tokenizer_dir", "${tokenizer_dir}")
    + "instance_group [ { count: ${preprocessing_instance_count}, kind: KIND_CPU } ]\n"
)
VALUES = {
    "triton_backend": "python",
    "triton_max_batch_size": "8",
    "engine_dir": "/srv/engine",
    "batching_strategy": "inflight_fused_batching",
    "tokenizer_dir": "/srv/tokenizer",
    "preprocessing_instance_count": "2",
}


def _template_dir(root: Path) -> Path:
    templates = root / "templates"
    (templates / "engine" / "1" / "tables").mkdir(parents=True)
    (templates / "engine" / "config.pbtxt").write_text(ENGINE_CONFIG)
    (templates / "engine" / "1" / "model.py").write_text('ENGINE = "${engine_dir}"  # not a template\n')
    (templates / "engine" / "1" / "tables" / "steps.bin").write_bytes(bytes(range(256)))
    (templates / "pre" / "1").mkdir(parents=True)
    (templates / "pre" / "config.pbtxt").write_text(PRE_CONFIG)
    (templates / "pre" / "1" / "model.py").write_text("print('pre')\n")
    return templates


def test_render_repository_fills_each_config_and_copies_other_files_untouched(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    out = tmp_path / "out"
    result = render_repository(templates, out, {**VALUES, "not_in_any_file": "x"})

    assert result.model_names == ("engine", "pre")
    assert (out / "engine" / "1" / "model.py").read_bytes() == (
        templates / "engine" / "1" / "model.py"
    ).read_bytes()
    assert (out / "engine" / "1" / "tables" / "steps.bin").read_bytes() == bytes(range(256))
    engine_text = (out / "engine" / "config.pbtxt").read_text()
    assert 'backend: "python"' in engine_text and "max_batch_size: 8" in engine_text
    assert '"/srv/engine"' in engine_text
    assert "count: 2" in (out / "pre" / "config.pbtxt").read_text()
    engine = result.model("engine")
    assert engine.filled == {"triton_backend", "triton_max_batch_size", "engine_dir", "batching_strategy"}
    assert result.model("pre").filled == {
        "triton_max_batch_size",
        "tokenizer_dir",
        "preprocessing_instance_count",
    }
    assert result.unused_values == ("not_in_any_file",)
    assert result.defaults_left == {"engine": ("kv_cache_free_gpu_mem_fraction",)}
    assert engine.config_path == out / "engine" / "config.pbtxt"


def test_a_needed_value_left_names_key_model_and_file_and_writes_nothing(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    out = tmp_path / "out"
    values = {key: value for key, value in VALUES.items() if key != "triton_backend"}
    with pytest.raises(TemplateError) as caught:
        render_repository(templates, out, values)
    message = str(caught.value)
    assert "config.pbtxt of model 'engine' needs a value for ${triton_backend}" in message
    assert str(templates / "engine" / "config.pbtxt") in message
    assert "'pre'" not in message
    assert isinstance(caught.value, SetupError)
    assert not out.exists()


def test_every_file_with_a_missing_value_is_named(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    values = {key: value for key, value in VALUES.items() if key not in ("engine_dir", "tokenizer_dir")}
    with pytest.raises(TemplateError) as caught:
        render_repository(templates, tmp_path / "out", values)
    message = str(caught.value)
    assert "model 'engine' needs a value for ${engine_dir}" in message
    assert "model 'pre' needs a value for ${tokenizer_dir}" in message


def test_models_selects_which_directories_are_rendered(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    result = render_repository(templates, tmp_path / "out", VALUES, models=["pre"])
    assert result.model_names == ("pre",)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["pre"]
    with pytest.raises(TemplateError, match=r"no model 'post'.*it has: engine, pre"):
        render_repository(templates, tmp_path / "out", VALUES, models=["post"])


def test_a_missing_template_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="does not exist"):
        render_repository(tmp_path / "nowhere", tmp_path / "out", VALUES)


def test_a_model_directory_without_config_is_a_clear_error(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    (templates / "post" / "1").mkdir(parents=True)
    with pytest.raises(TemplateError, match=r"post has no config\.pbtxt"):
        render_repository(templates, tmp_path / "out", VALUES)


def test_caches_and_hidden_folders_are_not_models(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    (templates / "__pycache__").mkdir()
    (templates / ".git").mkdir()
    (templates / "pre" / "1" / "__pycache__").mkdir()
    (templates / "pre" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    result = render_repository(templates, tmp_path / "out", VALUES)
    assert result.model_names == ("engine", "pre")
    assert not (tmp_path / "out" / "pre" / "1" / "__pycache__").exists()


def test_rendering_into_the_template_directory_is_refused(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    with pytest.raises(TemplateError, match="overlaps"):
        render_repository(templates, templates / "rendered", VALUES)
    with pytest.raises(TemplateError, match="overlaps"):
        render_repository(templates, templates, VALUES)


def test_rendering_again_replaces_each_model_directory(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    out = tmp_path / "out"
    (out / "engine").mkdir(parents=True)
    (out / "engine" / "stale.txt").write_text("old")
    (out / "unrelated").mkdir()
    render_repository(templates, out, VALUES)
    render_repository(templates, out, {**VALUES, "triton_max_batch_size": "16"})
    assert not (out / "engine" / "stale.txt").exists()
    assert (out / "unrelated").is_dir()
    assert "max_batch_size: 16" in (out / "engine" / "config.pbtxt").read_text()


def test_an_ensemble_without_a_version_directory_gets_one(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path)
    (templates / "ens").mkdir()
    (templates / "ens" / "config.pbtxt").write_text('name: "ens"\nplatform: "ensemble"\nmax_batch_size: 4\n')
    (templates / "bare").mkdir()
    (templates / "bare" / "config.pbtxt").write_text('name: "bare"\nbackend: "python"\n')
    render_repository(templates, tmp_path / "out", VALUES)
    assert (tmp_path / "out" / "ens" / "1").is_dir()
    assert not (tmp_path / "out" / "bare" / "1").exists()


# --- RepositoryOptions ----------------------------------------------------------------------------


def test_options_defaults() -> None:
    values = RepositoryOptions(engine_dir="/e", tokenizer_dir="/t").to_values()
    assert values["decoupled_mode"] == "true"
    assert values["batching_strategy"] == "inflight_fused_batching"
    assert values["logits_datatype"] == "TYPE_FP32"
    assert values["max_queue_size"] == "0"
    assert values["max_queue_delay_microseconds"] == "0"
    assert values["triton_backend"] == "tensorrtllm"
    assert values["triton_max_batch_size"] == "64"
    assert values["engine_dir"] == "/e" and values["tokenizer_dir"] == "/t"
    # options left to the backend's default are not filled at all
    assert "kv_cache_free_gpu_mem_fraction" not in values
    assert "enable_kv_cache_reuse" not in values
    assert "engine_dir" not in RepositoryOptions().to_values()


def test_options_write_booleans_and_numbers_as_text() -> None:
    values = RepositoryOptions(
        decoupled_mode=False,
        enable_kv_cache_reuse=True,
        exclude_input_in_output=False,
        kv_cache_free_gpu_mem_fraction=0.85,
        max_queue_size=128,
        batch_scheduler_policy="max_utilization",
    ).to_values()
    assert values["decoupled_mode"] == "false"
    assert values["enable_kv_cache_reuse"] == "true"
    assert values["exclude_input_in_output"] == "false"
    assert values["kv_cache_free_gpu_mem_fraction"] == "0.85"
    assert values["max_queue_size"] == "128"
    assert values["batch_scheduler_policy"] == "max_utilization"


def test_extra_fills_any_other_placeholder_but_not_an_option() -> None:
    values = RepositoryOptions(extra={"lora_cache_gpu_memory_fraction": "0.1"}).to_values()
    assert values["lora_cache_gpu_memory_fraction"] == "0.1"
    with pytest.raises(TemplateError, match="engine_dir"):
        RepositoryOptions(extra={"engine_dir": "/e"})
    with pytest.raises(TemplateError, match="placeholder name"):
        RepositoryOptions(extra={"not a name": "1"})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"batching_strategy": "static"}, "batching_strategy"),
        ({"triton_backend": "tensorrt"}, "triton_backend"),
        ({"batch_scheduler_policy": "fifo"}, "batch_scheduler_policy"),
        ({"logits_datatype": "FP32"}, "logits_datatype"),
        ({"triton_max_batch_size": 0}, "triton_max_batch_size"),
        ({"bls_instance_count": 0}, "bls_instance_count"),
        ({"max_queue_size": -1}, "max_queue_size"),
        ({"kv_cache_free_gpu_mem_fraction": 1.5}, "kv_cache_free_gpu_mem_fraction"),
    ],
)
def test_options_refuse_values_the_backend_would_reject(change: dict[str, Any], named: str) -> None:
    with pytest.raises(TemplateError, match=named):
        RepositoryOptions(**change)


def test_options_for_an_engine_take_its_limits(tmp_path: Path) -> None:
    engine = _engine_dir(tmp_path, _build_layout(max_batch_size=8, max_beam_width=2))
    options = RepositoryOptions.for_engine(engine, tokenizer_dir="/t", triton_backend="python")
    assert options.engine_dir == str(engine)
    assert options.triton_max_batch_size == 8
    assert options.max_beam_width == 2
    assert options.triton_backend == "python"
    overridden = RepositoryOptions.for_engine(read_engine_config(engine), triton_max_batch_size=4)
    assert overridden.triton_max_batch_size == 4


# --- engine config.json ---------------------------------------------------------------------------


def _build_layout(**build: Any) -> dict[str, Any]:
    build_config = {"max_batch_size": 64, "max_beam_width": 1, "max_input_len": 1024, "max_seq_len": 2048}
    build_config.update(build)
    return {
        "version": "0.14.0",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "float16",
            "vocab_size": 128256,
            "mapping": {"world_size": 1, "tp_size": 1, "pp_size": 1},
        },
        "build_config": build_config,
    }


def _engine_dir(root: Path, data: object, name: str = "engine") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(data))
    return directory


def test_reads_the_trtllm_build_layout(tmp_path: Path) -> None:
    data = _build_layout(max_num_tokens=8192)
    data["pretrained_config"]["mapping"] = {"world_size": 4, "tp_size": 2, "pp_size": 2}
    config = read_engine_config(_engine_dir(tmp_path, data))
    assert config.layout == "build_config"
    assert (config.max_batch_size, config.max_beam_width) == (64, 1)
    assert (config.max_input_len, config.max_seq_len, config.max_num_tokens) == (1024, 2048, 8192)
    assert (config.tp_size, config.pp_size, config.world_size) == (2, 2, 4)
    assert (config.architecture, config.dtype, config.vocab_size) == ("LlamaForCausalLM", "float16", 128256)
    assert config.version == "0.14.0"
    assert config.config_path == tmp_path / "engine" / "config.json"


def test_world_size_is_tp_times_pp_when_the_mapping_does_not_say(tmp_path: Path) -> None:
    data = _build_layout()
    data["pretrained_config"]["mapping"] = {"tp_size": 2, "pp_size": 3}
    assert read_engine_config(_engine_dir(tmp_path, data)).world_size == 6
    del data["pretrained_config"]
    assert read_engine_config(_engine_dir(tmp_path, data, "single")).world_size == 1


def test_before_0_11_the_sequence_limit_is_input_plus_output(tmp_path: Path) -> None:
    data = _build_layout(max_input_len=1000)
    del data["build_config"]["max_seq_len"]
    data["build_config"]["max_output_len"] = 500
    config = read_engine_config(_engine_dir(tmp_path, data))
    assert config.max_seq_len == 1500
    assert config.max_num_tokens is None


def test_reads_the_legacy_builder_config_layout(tmp_path: Path) -> None:
    data = {
        "builder_config": {
            "name": "llama",
            "precision": "float16",
            "tensor_parallel": 2,
            "pipeline_parallel": 2,
            "max_batch_size": 16,
            "max_input_len": 512,
            "max_output_len": 256,
            "vocab_size": 32000,
        },
        "plugin_config": {"paged_kv_cache": True, "tokens_per_block": 64},
    }
    config = read_engine_config(_engine_dir(tmp_path, data))
    assert config.layout == "builder_config"
    assert (config.max_batch_size, config.max_beam_width, config.max_seq_len) == (16, 1, 768)
    assert (config.tp_size, config.pp_size, config.world_size) == (2, 2, 4)
    assert (config.architecture, config.dtype) == ("llama", "float16")


def test_engine_values_are_the_placeholders_an_engine_decides(tmp_path: Path) -> None:
    data = _build_layout(max_batch_size=32, max_beam_width=4)
    data["pretrained_config"]["mapping"] = {"world_size": 2, "tp_size": 2, "pp_size": 1}
    values = engine_values(_engine_dir(tmp_path, data))
    assert values == {"triton_max_batch_size": "32", "max_beam_width": "4", "world_size": "2"}


def test_a_missing_engine_directory_or_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineConfigError, match="does not exist"):
        read_engine_config(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineConfigError, match="has no config.json"):
        read_engine_config(tmp_path / "empty")


def test_invalid_json_is_reported_with_its_position(tmp_path: Path) -> None:
    directory = tmp_path / "engine"
    directory.mkdir()
    (directory / "config.json").write_text('{\n  "build_config": {\n    "max_batch_size": ,\n')
    with pytest.raises(EngineConfigError, match=r"not valid JSON .*line 3") as caught:
        read_engine_config(directory)
    assert isinstance(caught.value, SetupError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"pretrained_config": {}}, "neither 'build_config' nor"),
        ({"build_config": "64"}, "build_config must be a JSON object"),
        ({"build_config": {"max_input_len": 8, "max_seq_len": 16}}, "has no build_config.max_batch_size"),
        ({"build_config": {"max_batch_size": 8, "max_input_len": 8}}, "neither build_config.max_seq_len"),
        (
            {"build_config": {"max_batch_size": True, "max_input_len": 8, "max_seq_len": 16}},
            "positive integer",
        ),
        ({"build_config": {"max_batch_size": 0, "max_input_len": 8, "max_seq_len": 16}}, "positive integer"),
        ({"builder_config": {"max_batch_size": 8, "max_input_len": 8}}, "builder_config.max_output_len"),
    ],
)
def test_configs_that_are_not_engine_configs_are_refused(data: object, message: str) -> None:
    with pytest.raises(EngineConfigError, match=message):
        parse_engine_config(data, engine_dir="/engines/x")
