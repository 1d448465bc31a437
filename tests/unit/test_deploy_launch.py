"""``trtclient serve --engine-dir``: the tritonserver / mpirun command and the repository rendered for it.

Nothing here starts a server (``tests/integration/test_deploy_serve.py`` does). ``tritonserver`` and
``mpirun`` are stand-ins — empty executable files — where a test needs them to exist; mpirun is not
installed on this machine and the multi-rank command is only constructed, never run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from trtclient.cli import common, serve_cmd
from trtclient.errors import SetupError
from trtclient.server.deploy.launch import FIVE_MODELS, GpuTriton, Ports, launch_argv

FAKES = Path(__file__).resolve().parents[1] / "fakes"
OLD_TEMPLATES = FAKES / "inflight_batcher_llm_r24_04"
PORTS = Ports(http=8000, grpc=8001, metrics=8002)
COMMON: dict[str, Any] = {
    "model_repository": Path("/repo"),
    "address": "127.0.0.1",
    "ports": PORTS,
    "shm_prefix": "p_",
}


def test_one_rank_runs_tritonserver_bound_to_loopback() -> None:
    assert launch_argv("/opt/tritonserver/bin/tritonserver", world_size=1, **COMMON) == [
        "/opt/tritonserver/bin/tritonserver", "--model-repository=/repo",
        "--http-address=127.0.0.1", "--http-port=8000", "--grpc-address=127.0.0.1", "--grpc-port=8001",
        "--metrics-address=127.0.0.1", "--metrics-port=8002",
        "--disable-auto-complete-config", "--backend-config=python,shm-region-prefix-name=p_r0_",
    ]  # fmt: skip


def test_two_ranks_run_one_mpirun_block_each() -> None:
    argv = launch_argv("tritonserver", world_size=2, mpirun="/usr/bin/mpirun", log_verbose=1, **COMMON)
    rank = [
        "tritonserver", "--model-repository=/repo",
        "--http-address=127.0.0.1", "--http-port=8000", "--grpc-address=127.0.0.1", "--grpc-port=8001",
        "--metrics-address=127.0.0.1", "--metrics-port=8002", "--log-verbose=1",
    ]  # fmt: skip
    assert argv == [
        "/usr/bin/mpirun", "--allow-run-as-root",
        "-n", "1", *rank,
        "--disable-auto-complete-config", "--backend-config=python,shm-region-prefix-name=p_r0_",
        ":",
        "-n", "1", *rank, "--model-control-mode=explicit", "--load-model=tensorrt_llm",
        "--disable-auto-complete-config", "--backend-config=python,shm-region-prefix-name=p_r1_",
    ]  # fmt: skip


def test_four_ranks_have_distinct_shared_memory_prefixes_and_three_separators() -> None:
    argv = launch_argv(
        "tritonserver", world_size=4, tensorrt_llm_model="llm", backend_dir=Path("/b"), **COMMON
    )
    prefixes = [a for a in argv if a.startswith("--backend-config=python,shm-region-prefix-name=")]
    assert [p.rsplit("=", 1)[1] for p in prefixes] == ["p_r0_", "p_r1_", "p_r2_", "p_r3_"]
    assert argv.count(":") == 3
    assert argv.count("--load-model=llm") == 3
    assert argv.count("--backend-directory=/b") == 4


# --- plans over an engine directory ---------------------------------------------------------------


def make_engine(root: Path, *, world_size: int = 1, max_batch_size: int = 128, ranks: bool = True) -> Path:
    """An engine directory as trtllm-build writes it (config.json; rank files hold no real engine)."""
    engine = root / f"engine-ws{world_size}"
    engine.mkdir(parents=True)
    config = {
        "version": "0.12.0",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "float16",
            "mapping": {"world_size": world_size, "tp_size": world_size, "pp_size": 1},
        },
        "build_config": {
            "max_batch_size": max_batch_size,
            "max_beam_width": 1,
            "max_input_len": 1024,
            "max_seq_len": 2048,
        },
    }
    (engine / "config.json").write_text(json.dumps(config))
    if ranks:
        for rank in range(world_size):
            (engine / f"rank{rank}.engine").write_bytes(b"")
    return engine


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A tokenizer folder and stand-in tritonserver / mpirun executables."""
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tritonserver", "mpirun"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    return {
        "root": tmp_path,
        "tokenizer": tokenizer,
        "tritonserver": bin_dir / "tritonserver",
        "mpirun": bin_dir / "mpirun",
    }


def server_for(host: dict[str, Path], engine: Path, **options: Any) -> GpuTriton:
    return GpuTriton(
        engine_dir=engine, tokenizer_dir=host["tokenizer"], tritonserver=str(host["tritonserver"]), **options
    )


def test_plan_renders_the_bundled_templates_from_the_engine(host: dict[str, Path]) -> None:
    engine = make_engine(host["root"], max_batch_size=128)
    plan = server_for(host, engine, repository={"kv_cache_free_gpu_mem_fraction": 0.85}).plan(
        host["root"] / "repo"
    )
    assert plan.render.model_names == FIVE_MODELS
    assert plan.world_size == 1
    assert plan.argv[0] == str(host["tritonserver"])
    assert f"--model-repository={host['root'] / 'repo'}" in plan.argv
    llm = (host["root"] / "repo" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert "max_batch_size: 128" in llm
    assert f'string_value: "{engine}"' in llm
    assert 'backend: "tensorrtllm"' in llm
    assert 'string_value: "0.85"' in llm
    pre = (host["root"] / "repo" / "preprocessing" / "config.pbtxt").read_text()
    assert f'string_value: "{host["tokenizer"]}"' in pre
    assert plan.ports.http != plan.ports.grpc  # free ports, all different


def test_two_rank_engine_is_launched_through_mpirun(
    host: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(host["root"], world_size=2)
    monkeypatch.setenv("PATH", str(host["root"] / "nowhere"))
    with pytest.raises(SetupError, match="world size 2 needs mpirun .* --mpirun PATH"):
        server_for(host, engine).plan(host["root"] / "repo")
    plan = server_for(host, engine, mpirun=str(host["mpirun"])).plan(host["root"] / "repo")
    assert plan.argv[:2] == (str(host["mpirun"]), "--allow-run-as-root")
    assert plan.world_size == 2


def test_dry_run_plan_needs_no_mpirun_or_tritonserver(
    host: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(host["root"], world_size=2)
    monkeypatch.setenv("PATH", str(host["root"] / "nowhere"))
    server = GpuTriton(
        engine_dir=engine,
        tokenizer_dir=host["root"] / "absent",
        tritonserver="/opt/tritonserver/bin/tritonserver",
    )
    plan = server.plan(host["root"] / "repo", check_tools=False)
    assert plan.argv[0] == "mpirun"
    assert plan.ports == Ports(8000, 8001, 8002)  # Triton's defaults shown for ports left to choose


def test_world_size_must_match_the_engine(host: dict[str, Path]) -> None:
    engine = make_engine(host["root"], world_size=2)
    with pytest.raises(SetupError, match=r"built for world size 2 \(tp 2 × pp 1\), not 1"):
        server_for(host, engine, world_size=1, mpirun=str(host["mpirun"])).plan(host["root"] / "repo")


def test_missing_rank_engines_are_named_for_the_tensorrtllm_backend(host: dict[str, Path]) -> None:
    engine = make_engine(host["root"], ranks=False)
    with pytest.raises(SetupError, match="lacks rank0.engine"):
        server_for(host, engine).plan(host["root"] / "repo")
    # A python-backend engine (the embedded CPU engine) has no rank files.
    server_for(host, engine, repository={"triton_backend": "python"}).plan(host["root"] / "repo")


def test_missing_binaries_and_tokenizer_say_which_flag_to_use(host: dict[str, Path]) -> None:
    engine = make_engine(host["root"])
    with pytest.raises(
        SetupError, match="tritonserver not found at /nope/tritonserver: pass --tritonserver PATH"
    ):
        GpuTriton(engine_dir=engine, tokenizer_dir=host["tokenizer"], tritonserver="/nope/tritonserver").plan(
            host["root"] / "repo"
        )
    with pytest.raises(SetupError, match="pass --tokenizer-dir"):
        GpuTriton(
            engine_dir=engine, tokenizer_dir=host["root"] / "absent", tritonserver=str(host["tritonserver"])
        ).plan(host["root"] / "repo")


def test_an_older_differently_shaped_template_set_renders(host: dict[str, Path]) -> None:
    engine = make_engine(host["root"], max_batch_size=64)
    server = server_for(
        host, engine, template_dir=OLD_TEMPLATES, repository={"batch_scheduler_policy": "guaranteed_no_evict"}
    )
    plan = server.plan(host["root"] / "repo")
    assert plan.render.model_names == FIVE_MODELS
    assert plan.render.model("tensorrt_llm").filled >= {"engine_dir", "batching_strategy", "decoupled_mode"}
    assert "triton_backend" not in plan.render.model("tensorrt_llm").keys  # r24.04 fixes the backend name
    llm = (host["root"] / "repo" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert "max_batch_size: 64" in llm
    assert 'string_value: "guaranteed_no_evict"' in llm
    assert "${kv_cache_free_gpu_mem_fraction}" in llm  # unset parameter: the backend's default applies
    for model in FIVE_MODELS:
        text = (host["root"] / "repo" / model / "config.pbtxt").read_text()
        assert "${triton_max_batch_size}" not in text and "${decoupled_mode}" not in text


# --- the command line -----------------------------------------------------------------------------


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trtclient")
    serve_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    return common.run_handler(args.handler, args)


def test_serve_dry_run_prints_the_rendered_models_and_the_command(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(host["root"], world_size=2)
    code = serve(
        [
            "--engine-dir",
            str(engine),
            "--tokenizer-dir",
            str(host["tokenizer"]),
            "--http-port",
            "9000",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "# rendered ensemble, preprocessing, tensorrt_llm, postprocessing, tensorrt_llm_bls "
        "into <model-repository> (--model-repo-out keeps it); world size 2"
    )
    assert lines[1] == "# ports not given are picked free at start (Triton's defaults shown)"
    command = "\n".join(lines[2:]).replace(" \\\n    ", " ")
    assert command.count("--model-repository=<model-repository>") == 2
    assert command.startswith("mpirun --allow-run-as-root -n 1 /opt/tritonserver/bin/tritonserver")
    assert command.count("--http-port=9000") == 2
    assert "--grpc-port=8001" in command


def test_serve_options_reach_the_rendered_repository(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(host["root"])
    properties = host["root"] / "serving.properties"
    properties.write_text("option.kv_cache_free_gpu_mem_fraction=0.85\noption.enable_kv_cache_reuse=true\n")
    out_dir = host["root"] / "kept"
    code = serve(
        [
            "--engine-dir",
            str(engine),
            "--tokenizer-dir",
            str(host["tokenizer"]),
            "--serving-properties",
            str(properties),
        ]
        + [
            "--kv-cache-free-gpu-mem-fraction",
            "0.5",
            "--exclude-input-in-output",
            "true",
            "--max-queue-size",
            "32",
        ]
        + ["--set", "lora_cache_gpu_memory_fraction=0.1", "--model-repo-out", str(out_dir), "--dry-run"]
    )
    assert code == 0
    assert f"into {out_dir};" in capsys.readouterr().out
    llm = (out_dir / "tensorrt_llm" / "config.pbtxt").read_text()
    for expected in ('"kv_cache_free_gpu_mem_fraction", value: { string_value: "0.5"', "max_queue_size: 32"):
        assert expected in llm
    assert 'key: "enable_kv_cache_reuse", value: { string_value: "true"' in llm
    assert 'key: "exclude_input_in_output", value: { string_value: "true"' in llm
    assert 'key: "lora_cache_gpu_memory_fraction", value: { string_value: "0.1"' in llm


def test_serve_user_mistakes_are_one_line(host: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(host["root"])
    assert serve(["--engine-dir", str(engine), "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith(
        "trtclient: error: --engine-dir needs --tokenizer-dir (the Hugging"
    )
    assert serve(["--engine-dir", str(engine), "--tokenizer-dir", "t", "--set", "oops", "--dry-run"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_a_value_left_where_the_server_needs_one_names_key_and_file(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    templates = host["root"] / "templates"
    shutil.copytree(OLD_TEMPLATES, templates)
    config = templates / "postprocessing" / "config.pbtxt"
    config.write_text(config.read_text().replace("${postprocessing_instance_count}", "${decoder_instances}"))
    engine = make_engine(host["root"])
    code = serve(
        [
            "--engine-dir",
            str(engine),
            "--tokenizer-dir",
            str(host["tokenizer"]),
            "--template-dir",
            str(templates),
        ]
        + ["--dry-run"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "${decoder_instances}" in err and str(config) in err
