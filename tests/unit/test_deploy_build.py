"""Build commands per TensorRT-LLM release, tool discovery, and running a build.

The expected command lines are written out from the documented flags of each release (TensorRT-LLM
release notes; the seeds' recipes). Running a build uses stand-in executables from ``tests/fakes``:
``convert_checkpoint.py`` and ``trtllm-build`` need a GPU, so small scripts take their place that accept
only the flags the release documents, fail like argparse on any other, and write the files the real tools
write (checkpoint and engine ``config.json``, one file per rank).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from trtclient.errors import SetupError
from trtclient.server.deploy import build as build_module
from trtclient.server.deploy.build import (
    PROVENANCE_FILE,
    BuildStepError,
    Tools,
    build_command,
    convert_command,
    format_command,
    locate_tools,
    plan_build,
    resolve_version,
    run_build,
    verify_engine_dir,
)
from trtclient.server.deploy.spec import BuildSpec, SpecError, make_spec
from trtclient.server.deploy.versions import LATEST_KNOWN, FlagSpelling, TrtllmVersion, spelling_for

FAKES = Path(__file__).resolve().parents[1] / "fakes"
TOOLS = Tools(
    python="python3",
    convert_script=Path("/trtllm/examples/llama/convert_checkpoint.py"),
    trtllm_build="trtllm-build",
)


def spelling(release: str) -> FlagSpelling:
    return spelling_for(TrtllmVersion.parse(release))


def jetson_gptq() -> BuildSpec:
    """Llama-3-8B INT4-GPTQ on Jetson Orin (TensorRT-LLM v0.12.0-jetson, README4Jetson)."""
    return make_spec(
        {
            "model_dir": "/models/Meta-Llama-3-8B-Instruct-GPTQ",
            "engine_dir": "/engines/llama3-gptq",
            "dtype": "float16",
            "weight_only_precision": "int4_gptq",
            "per_group": True,
            "gemm_plugin": "float16",
        }
    )


def a100_fp16() -> BuildSpec:
    """Llama-3-8B fp16, tp 1, max batch 256 with the Triton tutorial's plugins (TB docs/llama.md)."""
    return make_spec(
        {
            "model_dir": "/models/Meta-Llama-3-8B-Instruct",
            "engine_dir": "/engines/llama3-fp16",
            "checkpoint_dir": "/ckpt/llama3-fp16",
            "dtype": "float16",
            "remove_input_padding": True,
            "gpt_attention_plugin": "float16",
            "context_fmha": True,
            "gemm_plugin": "float16",
            "paged_kv_cache": True,
            "max_batch_size": 256,
            "max_input_len": 2048,
            "max_output_len": 512,
        }
    )


def test_jetson_gptq_commands_on_0_12() -> None:
    spec, flags = jetson_gptq(), spelling("0.12.0")
    assert convert_command(spec, flags, TOOLS) == [
        "python3", "/trtllm/examples/llama/convert_checkpoint.py",
        "--model_dir", "/models/Meta-Llama-3-8B-Instruct-GPTQ",
        "--output_dir", "/engines/llama3-gptq-checkpoint",
        "--dtype", "float16", "--tp_size", "1", "--pp_size", "1",
        "--use_weight_only", "--weight_only_precision", "int4_gptq", "--per_group",
    ]  # fmt: skip
    assert build_command(spec, flags, TOOLS) == [
        "trtllm-build", "--checkpoint_dir", "/engines/llama3-gptq-checkpoint",
        "--output_dir", "/engines/llama3-gptq", "--gemm_plugin", "float16",
    ]  # fmt: skip


def test_a100_fp16_on_0_9_uses_max_output_len_and_paged_kv_cache() -> None:
    assert build_command(a100_fp16(), spelling("0.9.0"), TOOLS) == [
        "trtllm-build", "--checkpoint_dir", "/ckpt/llama3-fp16", "--output_dir", "/engines/llama3-fp16",
        "--gemm_plugin", "float16", "--gpt_attention_plugin", "float16",
        "--remove_input_padding", "enable", "--paged_kv_cache", "enable", "--context_fmha", "enable",
        "--max_batch_size", "256", "--max_input_len", "2048", "--max_output_len", "512",
    ]  # fmt: skip


def test_a100_fp16_on_0_12_bounds_the_total_with_max_seq_len() -> None:
    argv = build_command(a100_fp16(), spelling("0.12.0"), TOOLS)
    assert argv[argv.index("--max_seq_len") + 1] == "2560"  # 2048 prompt + 512 output
    assert "--max_output_len" not in argv
    assert argv[argv.index("--paged_kv_cache") + 1] == "enable"


@pytest.mark.parametrize("release", ["0.14.0", "0.19.0", "1.0.0"])
def test_newer_releases_spell_the_paged_kv_cache_as_kv_cache_type(release: str) -> None:
    argv = build_command(a100_fp16(), spelling(release), TOOLS)
    assert argv[argv.index("--kv_cache_type") + 1] == "paged"
    assert "--paged_kv_cache" not in argv
    off = build_command(
        make_spec({**a100_fp16().model_dump(), "paged_kv_cache": False}), spelling(release), TOOLS
    )
    assert off[off.index("--kv_cache_type") + 1] == "continuous"


def test_tp2_build_parallelises_in_convert_and_build() -> None:
    spec = make_spec({**a100_fp16().model_dump(), "tp_size": 2, "workers": 2, "convert_workers": 2})
    convert = convert_command(spec, spelling("0.19.0"), TOOLS)
    assert convert[convert.index("--tp_size") + 1] == "2"
    assert convert[convert.index("--workers") + 1] == "2"
    build = build_command(spec, spelling("0.19.0"), TOOLS)
    assert build[build.index("--workers") + 1] == "2"
    assert "--tp_size" not in build  # removed from trtllm-build in 0.12: parallelism lives in the checkpoint


def test_extra_arguments_come_last() -> None:
    spec = make_spec({**a100_fp16().model_dump(), "extra_build_args": ["--use_fused_mlp", "enable"]})
    assert build_command(spec, spelling("0.12.0"), TOOLS)[-2:] == ["--use_fused_mlp", "enable"]


@pytest.mark.parametrize(
    ("options", "release", "message"),
    [
        ({"dtype": "auto"}, "0.12.0", "dtype auto: tensorrt_llm 0.12.0 accepts bfloat16, float16, float32"),
        (
            {"weight_only_precision": "int8_gptq", "per_group": True},
            "0.14.0",
            "int8_gptq: tensorrt_llm 0.14.0",
        ),
        ({"max_output_len": 512}, "0.12.0", "also give max_input_len"),
        ({"max_seq_len": 4096}, "0.10.0", "bounds the output alone with --max_output_len"),
    ],
)
def test_options_a_release_cannot_express_are_refused(
    options: dict[str, object], release: str, message: str
) -> None:
    spec = make_spec({"model_dir": "/m", "engine_dir": "/e", **options})
    with pytest.raises(SpecError, match=message):
        plan_build(spec, TrtllmVersion.parse(release), TOOLS)


def test_the_same_options_pass_on_a_release_that_has_them() -> None:
    spec = make_spec(
        {"model_dir": "/m", "engine_dir": "/e", "dtype": "auto", "weight_only_precision": "int8_gptq"}
    )
    plan = plan_build(spec, TrtllmVersion.parse("0.15.0"), TOOLS)
    assert plan.steps[0].argv[plan.steps[0].argv.index("--dtype") + 1] == "auto"


def test_format_command_round_trips_through_a_shell() -> None:
    argv = [
        "python3",
        "/opt/my models/convert.py",
        "--model_dir",
        "/a b/c",
        "--per_group",
        "--dtype",
        "float16",
    ]
    text = format_command(argv)
    assert shlex.split(text.replace("\\\n", " ")) == argv
    assert text.splitlines()[0] == "python3 '/opt/my models/convert.py' \\"


def test_plan_shell_names_the_release() -> None:
    plan = plan_build(
        jetson_gptq(), TrtllmVersion.parse("0.12.0"), TOOLS, version_note="tensorrt_llm 0.12.0 (x)"
    )
    lines = plan.shell().splitlines()
    assert lines[0] == "# tensorrt_llm 0.12.0 (x)"
    assert sum(1 for line in lines if not line.startswith((" ", "#"))) == 2  # two commands


# --- which release --------------------------------------------------------------------------------


def test_version_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "installed_version", lambda: TrtllmVersion.parse("0.19.0"))
    version, note = resolve_version("0.12.0", dry_run=False)
    assert version == TrtllmVersion.parse("0.12.0")
    assert "--trtllm-version" in note


def test_installed_version_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "installed_version", lambda: TrtllmVersion.parse("0.19.0"))
    assert resolve_version(None, dry_run=False) == (
        TrtllmVersion.parse("0.19.0"),
        "tensorrt_llm 0.19.0 (installed)",
    )


def test_without_tensorrt_llm_only_a_dry_run_proceeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "installed_version", lambda: None)
    with pytest.raises(SetupError, match="tensorrt_llm is not installed.*--dry-run"):
        resolve_version(None, dry_run=False)
    version, note = resolve_version(None, dry_run=True)
    assert version == LATEST_KNOWN
    assert "not installed" in note


def test_unusable_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "installed_version", lambda: None)
    with pytest.raises(SpecError, match="--trtllm-version"):
        resolve_version("newest", dry_run=True)
    with pytest.raises(SpecError, match="predates"):
        resolve_version("0.8.0", dry_run=True)
    assert "newest release checked" in resolve_version("9.0.0", dry_run=True)[1]


# --- where the tools are --------------------------------------------------------------------------


def test_missing_convert_script_says_where_to_get_it(tmp_path: Path) -> None:
    spec = make_spec({"model_dir": "/m", "engine_dir": "/e"})
    with pytest.raises(SetupError, match=r"git clone --branch v0\.12\.0 .*--examples-dir"):
        locate_tools(spec, spelling("0.12.0"), trtllm_build=sys.executable)
    in_examples = make_spec(
        {"model_dir": "/m", "engine_dir": "/e", "examples_dir": str(tmp_path), "model_family": "qwen"}
    )
    with pytest.raises(SetupError, match=f"no qwen/convert_checkpoint.py under {tmp_path}"):
        locate_tools(in_examples, spelling("0.12.0"), trtllm_build=sys.executable)
    explicit = make_spec(
        {"model_dir": "/m", "engine_dir": "/e", "convert_script": str(tmp_path / "convert.py")}
    )
    with pytest.raises(SetupError, match="convert.py does not exist"):
        locate_tools(explicit, spelling("0.12.0"), trtllm_build=sys.executable)


def test_missing_trtllm_build_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "convert_checkpoint.py"
    script.write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = make_spec({"model_dir": "/m", "engine_dir": "/e", "convert_script": str(script)})
    with pytest.raises(SetupError, match="trtllm-build not found on PATH.*--trtllm-build"):
        locate_tools(spec, spelling("0.12.0"), python=str(tmp_path / "python"))
    with pytest.raises(SetupError, match="is not an executable"):
        locate_tools(spec, spelling("0.12.0"), trtllm_build=str(script))


def test_dry_run_puts_placeholders_in_the_release_layout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = make_spec({"model_dir": "/m", "engine_dir": "/e"})
    old = locate_tools(spec, spelling("0.12.0"), python="/x/python", check=False)
    new = locate_tools(spec, spelling("0.20.0"), python="/x/python", check=False)
    assert old.convert_script == Path("<TensorRT-LLM>/examples/llama/convert_checkpoint.py")
    assert new.convert_script == Path("<TensorRT-LLM>/examples/models/core/llama/convert_checkpoint.py")
    assert old.trtllm_build == "trtllm-build"


@pytest.mark.parametrize("layout", ["llama", "models/core/llama"])
def test_examples_dir_finds_either_layout_from_checkout_or_examples(tmp_path: Path, layout: str) -> None:
    script = tmp_path / "TensorRT-LLM" / "examples" / layout / "convert_checkpoint.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    for examples in (tmp_path / "TensorRT-LLM", tmp_path / "TensorRT-LLM" / "examples"):
        spec = make_spec({"model_dir": "/m", "engine_dir": "/e", "examples_dir": str(examples)})
        tools = locate_tools(spec, spelling("0.19.0"), trtllm_build=sys.executable)
        assert tools.convert_script == script


# --- running a build with stand-in tools ----------------------------------------------------------


@pytest.fixture
def toolbox(tmp_path: Path) -> dict[str, Path]:
    """An examples folder with the stand-in convert script, a stand-in trtllm-build, a Hugging Face dir."""
    examples = tmp_path / "TensorRT-LLM" / "examples"
    (examples / "llama").mkdir(parents=True)
    shutil.copy(FAKES / "fake_convert_checkpoint.py", examples / "llama" / "convert_checkpoint.py")
    trtllm_build = tmp_path / "bin" / "trtllm-build"
    trtllm_build.parent.mkdir()
    trtllm_build.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {FAKES / "fake_trtllm_build.py"} "$@"\n'
    )
    trtllm_build.chmod(0o755)
    model = tmp_path / "Meta-Llama-3-8B-Instruct"
    model.mkdir()
    hf_config = {
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 128256,
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
    }
    (model / "config.json").write_text(json.dumps(hf_config))
    return {"examples": examples, "trtllm_build": trtllm_build, "model": model, "root": tmp_path}


def _run(toolbox: dict[str, Path], release: str, options: dict[str, object]) -> Path:
    where = {
        "model_dir": str(toolbox["model"]),
        "engine_dir": str(toolbox["root"] / "engine"),
        "examples_dir": str(toolbox["examples"]),
    }
    spec = make_spec(options, where)
    version = TrtllmVersion.parse(release)
    tools = locate_tools(
        spec, spelling_for(version), python=sys.executable, trtllm_build=str(toolbox["trtllm_build"])
    )
    return run_build(plan_build(spec, version, tools), spec)


@pytest.mark.parametrize("release", ["0.9.0", "0.12.0", "0.14.0", "0.19.0"])
@pytest.mark.parametrize("tp_size", [1, 2])
def test_build_produces_an_engine_per_rank(
    toolbox: dict[str, Path], monkeypatch: pytest.MonkeyPatch, release: str, tp_size: int
) -> None:
    monkeypatch.setenv("FAKE_TRTLLM_VERSION", release)
    options = {
        **a100_fp16().model_dump(exclude={"model_dir", "engine_dir", "checkpoint_dir"}),
        "tp_size": tp_size,
    }
    engine = _run(toolbox, release, options)
    config = json.loads((engine / "config.json").read_text())
    assert config["version"] == release
    assert config["pretrained_config"]["mapping"]["world_size"] == tp_size
    assert config["build_config"]["max_batch_size"] == 256
    assert config["build_config"]["plugin_config"]["paged_kv_cache"] is True
    assert sorted(p.name for p in engine.glob("rank*.engine")) == [f"rank{r}.engine" for r in range(tp_size)]
    provenance = json.loads((engine / PROVENANCE_FILE).read_text())
    assert provenance["trtllm_version"] == release
    assert provenance["spec"]["tp_size"] == tp_size
    assert provenance["commands"][1][0] == str(toolbox["trtllm_build"])


def test_gptq_build_records_the_quantization(
    toolbox: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRTLLM_VERSION", "0.12.0")
    options = jetson_gptq().model_dump(include={"dtype", "weight_only_precision", "per_group", "gemm_plugin"})
    engine = _run(toolbox, "0.12.0", options)
    quantization = json.loads((engine / "config.json").read_text())["pretrained_config"]["quantization"]
    assert quantization == {"quant_algo": "W4A16_GPTQ", "group_size": 128}


def test_flags_of_another_release_fail_with_the_command(
    toolbox: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Spelled for 0.10 (--max_output_len), run by a 0.12 trtllm-build, which removed that flag.
    monkeypatch.setenv("FAKE_TRTLLM_VERSION", "0.12.0")
    with pytest.raises(
        BuildStepError, match=r"trtllm-build failed with exit code 2[\s\S]*--max_output_len 512"
    ):
        _run(toolbox, "0.10.0", {"max_input_len": 1024, "max_output_len": 512})
    assert "unrecognized arguments: --max_output_len 512" in capfd.readouterr().err


def test_missing_hugging_face_config_stops_before_any_tool(toolbox: dict[str, Path]) -> None:
    (toolbox["model"] / "config.json").unlink()
    with pytest.raises(SpecError, match="has no config.json"):
        _run(toolbox, "0.12.0", {})
    assert not (toolbox["root"] / "engine-checkpoint").exists()


def test_engine_dir_checks(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"pretrained_config": {"mapping": {"world_size": 2}}}))
    (tmp_path / "rank0.engine").write_bytes(b"")
    with pytest.raises(BuildStepError, match="lacks rank1.engine"):
        verify_engine_dir(tmp_path, 2)
    with pytest.raises(BuildStepError, match="world size 2, the spec asks for 1"):
        verify_engine_dir(tmp_path, 1)
    (tmp_path / "rank1.engine").write_bytes(b"")
    verify_engine_dir(tmp_path, 2)
