"""The build spec: files, layering, and the checks that catch impossible builds before any tool runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtclient.server.deploy.spec import SpecError, load_spec_file, make_spec

BASE = {"model_dir": "/models/llama", "engine_dir": "/engines/llama"}


def test_toml_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    spec_file = tmp_path / "specs" / "gptq.toml"
    spec_file.parent.mkdir()
    spec_file.write_text(
        'model_dir = "../hf/Meta-Llama-3-8B-Instruct-GPTQ"\n'
        'engine_dir = "engines/gptq"\n'
        'weight_only_precision = "int4_gptq"\n'
        "per_group = true\n"
        "max_batch_size = 8\n"
    )
    spec = make_spec(load_spec_file(spec_file))
    assert spec.model_dir == tmp_path / "specs" / ".." / "hf" / "Meta-Llama-3-8B-Instruct-GPTQ"
    assert spec.engine_dir == tmp_path / "specs" / "engines" / "gptq"
    assert spec.use_weight_only is True  # implied by the precision
    assert spec.max_batch_size == 8


def test_json_file_and_absolute_paths(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps({**BASE, "tp_size": 2, "pp_size": 2, "extra_build_args": ["--fast_build"]})
    )
    spec = make_spec(load_spec_file(spec_file))
    assert spec.model_dir == Path("/models/llama")
    assert spec.world_size == 4
    assert spec.extra_build_args == ("--fast_build",)


def test_later_layers_win_and_none_is_skipped() -> None:
    spec = make_spec(
        {**BASE, "max_batch_size": 8, "dtype": "bfloat16"}, {"max_batch_size": 256, "dtype": None}
    )
    assert spec.max_batch_size == 256
    assert spec.dtype == "bfloat16"


def test_default_checkpoint_dir_sits_beside_the_engine() -> None:
    spec = make_spec(BASE)
    assert spec.resolved_checkpoint_dir == Path("/engines/llama-checkpoint")
    assert make_spec({**BASE, "checkpoint_dir": "/tmp/ckpt"}).resolved_checkpoint_dir == Path("/tmp/ckpt")


def test_unknown_option_is_named() -> None:
    with pytest.raises(SpecError, match=r"spec\.toml: unknown option 'max_batchsize'"):
        make_spec({**BASE, "max_batchsize": 8}, source="spec.toml")


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(SpecError, match="engine_dir is required"):
        make_spec({"model_dir": "/m"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"per_group": True}, "per_group applies to the GPTQ/AWQ precisions"),
        ({"weight_only_precision": "int4", "per_group": True}, "weight_only_precision is int4"),
        ({"weight_only_precision": "int8", "use_weight_only": False}, "use_weight_only is false"),
        ({"max_input_len": 2048, "max_seq_len": 2048}, "must exceed max_input_len"),
        ({"max_input_len": 1024, "max_seq_len": 2048, "max_output_len": 512}, "not both"),
        ({"use_paged_context_fmha": True, "paged_kv_cache": False}, "needs the paged KV cache"),
        ({"use_paged_context_fmha": True, "context_fmha": False}, "context_fmha enabled"),
        ({"tp_size": 0}, "tp_size"),
        ({"dtype": "fp16"}, "dtype"),
        ({"weight_only_precision": "int3"}, "weight_only_precision"),
    ],
)
def test_impossible_builds_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec({**BASE, **options})


def test_consistent_seq_and_output_lengths_are_accepted() -> None:
    spec = make_spec({**BASE, "max_input_len": 1024, "max_seq_len": 1536, "max_output_len": 512})
    assert spec.sequence_limits() == (1536, 512)
    assert make_spec({**BASE, "max_input_len": 1024, "max_output_len": 512}).sequence_limits() == (1536, 512)
    assert make_spec({**BASE, "max_seq_len": 4096}).sequence_limits() == (4096, None)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    spec_file = tmp_path / "broken.toml"
    spec_file.write_text("model_dir = \n")
    with pytest.raises(SpecError, match="broken.toml is not valid TOML"):
        load_spec_file(spec_file)


def test_non_table_json_and_missing_files_are_refused(tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(SpecError, match="must be a table of options"):
        load_spec_file(listing)
    with pytest.raises(SpecError, match="cannot read build spec"):
        load_spec_file(tmp_path / "absent.toml")
