"""``trtclient build``: flags, spec files and serving.properties in; commands (dry run) or an engine out.

The run that builds uses the stand-in tools of ``tests/fakes`` (the real ones need a GPU); see
``test_deploy_build.py``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from trtclient.cli import build_cmd, common
from trtclient.server.deploy import build as build_module

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trtclient")
    build_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["build", *argv])
    return common.run_handler(args.handler, args)


@pytest.fixture(autouse=True)
def no_tensorrt_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "installed_version", lambda: None)


def test_dry_run_prints_the_commands_of_the_named_release(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        [
            "--model-dir", "/models/Meta-Llama-3-8B-Instruct-GPTQ", "--engine-dir", "/engines/gptq",
            "--weight-only-precision", "int4_gptq", "--per-group", "--gemm-plugin", "float16",
            "--paged-kv-cache", "enable", "--max-input-len", "1024", "--max-output-len", "1024",
            "--examples-dir", "/opt/TensorRT-LLM/examples", "--python", "python3",
            "--trtllm-version", "0.12.0", "--dry-run",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("# tensorrt_llm 0.12.0 (from --trtllm-version)\n")
    flat = out.replace(" \\\n    ", " ")
    assert len(flat.splitlines()) == 3  # the note, convert_checkpoint.py, trtllm-build
    assert "--use_weight_only --weight_only_precision int4_gptq --per_group" in flat
    assert "/opt/TensorRT-LLM/examples/llama/convert_checkpoint.py" in flat  # the 0.12 layout
    assert "--paged_kv_cache enable" in flat
    assert "--max_seq_len 2048" in flat


def test_dry_run_without_tensorrt_llm_spells_for_the_newest_known(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli(["--model-dir", "/m", "--engine-dir", "/e", "--paged-kv-cache", "enable", "--dry-run"]) == 0
    )
    out = capsys.readouterr().out
    assert "not installed here" in out.splitlines()[0]
    assert "--kv_cache_type paged" in out.replace(" \\\n    ", " ")


def test_flags_override_spec_file_which_overrides_serving_properties(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    properties = tmp_path / "serving.properties"
    properties.write_text(
        "option.model_id=hf\noption.max_rolling_batch_size=8\noption.tensor_parallel_degree=2\n"
    )
    spec = tmp_path / "spec.toml"
    spec.write_text('engine_dir = "engine"\nmax_batch_size = 16\n')
    code = run_cli(
        ["--serving-properties", str(properties), "--spec", str(spec), "--tp-size", "1"]
        + ["--build-args", "--use_fused_mlp enable", "--trtllm-version", "0.19.0", "--dry-run"]
    )
    captured = capsys.readouterr()
    text = captured.out.replace(" \\\n    ", " ")
    assert code == 0
    assert f"--model_dir {tmp_path / 'hf'}" in text
    assert f"--output_dir {tmp_path / 'engine'}" in text
    assert "--max_batch_size 16" in text
    assert "--tp_size 1" in text
    assert text.rstrip().endswith("--use_fused_mlp enable")


def test_user_mistakes_print_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        [
            "--model-dir",
            "/m",
            "--engine-dir",
            "/e",
            "--dtype",
            "auto",
            "--trtllm-version",
            "0.12.0",
            "--dry-run",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("trtclient: error: dtype auto: tensorrt_llm 0.12.0 accepts")
    assert "Traceback" not in err


def test_real_run_without_tensorrt_llm_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--model-dir", "/m", "--engine-dir", "/e"]) == 1
    assert "tensorrt_llm is not installed" in capsys.readouterr().err


def test_build_runs_the_tools_and_points_at_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    examples = tmp_path / "examples"
    (examples / "llama").mkdir(parents=True)
    shutil.copy(FAKES / "fake_convert_checkpoint.py", examples / "llama" / "convert_checkpoint.py")
    trtllm_build = tmp_path / "trtllm-build"
    trtllm_build.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {FAKES / "fake_trtllm_build.py"} "$@"\n'
    )
    trtllm_build.chmod(0o755)
    model = tmp_path / "hf"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "vocab_size": 1000,
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "max_position_embeddings": 2048,
            }
        )
    )
    monkeypatch.setenv("FAKE_TRTLLM_VERSION", "0.14.0")
    code = run_cli(
        [
            "--model-dir",
            str(model),
            "--engine-dir",
            str(tmp_path / "engine"),
            "--tp-size",
            "2",
            "--workers",
            "2",
        ]
        + ["--examples-dir", str(examples), "--python", sys.executable, "--trtllm-build", str(trtllm_build)]
        + ["--trtllm-version", "0.14.0"]
    )
    out = capfd.readouterr().out
    assert code == 0
    assert f"engine ready: {tmp_path / 'engine'}" in out
    assert f"trtclient serve --engine-dir {tmp_path / 'engine'} --tokenizer-dir {model}" in out
    assert (tmp_path / "engine" / "rank1.engine").is_file()
