"""Rendering a user's template folder with the CPU engine standing in for its ``tensorrt_llm`` model.

No server here: what is checked is the rendered repository (parsed as Triton ``ModelConfig`` messages) and
the one-line errors for folders the CPU engine cannot serve. ``tests/fakes/user_repository`` is a folder in
the upstream layout written for the tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from trtclient.cli import main
from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.pbtxt import parse_pbtxt, tensors
from trtclient.server.render import TemplateError, render_config
from trtclient.server.stand_in import render_with_stand_in

FAKES = Path(__file__).resolve().parents[1] / "fakes"
USER_REPOSITORY = FAKES / "user_repository"
R24_04 = FAKES / "inflight_batcher_llm_r24_04"
VALUES = EmbeddedTriton().repository_values(Path("/cache/engine"), Path("/cache/tokenizer"))


def parsed(path: Path) -> Any:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def user_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(USER_REPOSITORY, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("folder", [USER_REPOSITORY, R24_04], ids=["user-layout", "r24.04"])
def test_the_engine_model_is_ours_and_the_rest_is_theirs(folder: Path, tmp_path: Path) -> None:
    result = render_with_stand_in(folder, tmp_path / "out", VALUES)
    assert result.ensembles == ("ensemble",)
    assert result.engine_models == ("tensorrt_llm",)
    out = tmp_path / "out"
    engine = parsed(out / "tensorrt_llm" / "config.pbtxt")
    assert engine.backend == "python"
    assert (out / "tensorrt_llm" / "1" / "model.py").read_text() == (
        TEMPLATES_DIR / "tensorrt_llm" / "1" / "model.py"
    ).read_text()
    for name in ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm_bls"):
        config = parsed(out / name / "config.pbtxt")  # every file parses as a ModelConfig
        assert config.name == name
    ensemble = parsed(out / "ensemble" / "config.pbtxt")
    (step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == "tensorrt_llm"]
    engine_inputs = {tensor.name for tensor in engine.input}
    assert set(step.input_map) <= engine_inputs
    assert set(step.output_map) <= {tensor.name for tensor in engine.output}


def test_optional_inputs_the_engine_lacks_are_declared_and_reported(tmp_path: Path) -> None:
    folder = user_copy(tmp_path)
    config = folder / "tensorrt_llm" / "config.pbtxt"
    edit(
        config,
        '{ name: "stop", ',
        '{ name: "lookahead_config_x", data_type: TYPE_INT32, dims: [ 1 ], optional: true },\n'
        '  { name: "stop", ',
    )
    result = render_with_stand_in(folder, tmp_path / "out", VALUES)
    assert "lookahead_config_x" in result.carried_inputs["tensorrt_llm"]
    engine = parsed(tmp_path / "out" / "tensorrt_llm" / "config.pbtxt")
    declared = {tensor.name: tensor for tensor in engine.input}
    assert declared["lookahead_config_x"].optional
    assert declared["lookahead_config_x"].data_type == model_config_pb2.TYPE_INT32


def test_name_batch_size_and_decoupled_mode_of_their_engine_config_are_kept(tmp_path: Path) -> None:
    folder = user_copy(tmp_path)
    for model in ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm_bls", "tensorrt_llm"):
        edit(folder / model / "config.pbtxt", "max_batch_size: ${triton_max_batch_size}", "max_batch_size: 8")
    edit(folder / "tensorrt_llm" / "config.pbtxt", "decoupled: ${decoupled_mode}", "decoupled: false")
    render_with_stand_in(folder, tmp_path / "out", VALUES)
    engine = parsed(tmp_path / "out" / "tensorrt_llm" / "config.pbtxt")
    assert (engine.name, engine.max_batch_size, engine.model_transaction_policy.decoupled) == (
        "tensorrt_llm",
        8,
        False,
    )


def test_a_folder_without_an_ensemble_is_one_error_naming_the_folder(tmp_path: Path) -> None:
    folder = user_copy(tmp_path)
    shutil.rmtree(folder / "ensemble")
    with pytest.raises(TemplateError, match=r"has no ensemble.*platform: \"ensemble\"") as caught:
        render_with_stand_in(folder, tmp_path / "out", VALUES)
    assert str(folder) in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_folder_without_an_engine_model_is_one_error(tmp_path: Path) -> None:
    folder = user_copy(tmp_path)
    edit(folder / "tensorrt_llm" / "config.pbtxt", 'backend: "${triton_backend}"', 'backend: "onnxruntime"')
    with pytest.raises(TemplateError, match='backend: "tensorrtllm"'):
        render_with_stand_in(folder, tmp_path / "out", VALUES)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ name: "stop", ',
            '{ name: "draft_tokens_x", data_type: TYPE_INT32, dims: [ -1 ] },\n  { name: "stop", ',
            "required input 'draft_tokens_x' is not one the CPU engine takes",
        ),
        (
            '{ name: "temperature", data_type: TYPE_FP32',
            '{ name: "temperature", data_type: TYPE_FP16',
            "input 'temperature' is TYPE_FP16 there, TYPE_FP32 in the CPU engine",
        ),
        (
            'string_value: "${max_beam_width}"',
            'string_value: "4"',
            "max_beam_width is 4; the CPU engine decodes one beam",
        ),
    ],
    ids=["required-input", "data-type", "beam-width"],
)
def test_an_engine_config_the_cpu_engine_cannot_serve_names_model_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    folder = user_copy(tmp_path)
    config = folder / "tensorrt_llm" / "config.pbtxt"
    edit(config, old, new)
    with pytest.raises(TemplateError) as caught:
        render_with_stand_in(folder, tmp_path / "out", VALUES)
    text = str(caught.value)
    assert f"model 'tensorrt_llm' ({config})" in text
    assert message in text


def test_an_ensemble_reading_an_output_the_engine_lacks_is_named(tmp_path: Path) -> None:
    folder = user_copy(tmp_path)
    edit(
        folder / "ensemble" / "config.pbtxt",
        'output_map { key: "sequence_length" value: "_SEQUENCE_LENGTH" }',
        'output_map { key: "sequence_length" value: "_SEQUENCE_LENGTH" }\n'
        '      output_map { key: "medusa_output_x" value: "_MEDUSA" }',
    )
    with pytest.raises(TemplateError, match="ensemble 'ensemble' reads output 'medusa_output_x'"):
        render_with_stand_in(folder, tmp_path / "out", VALUES)


def test_the_command_line_says_it_in_one_line_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = user_copy(tmp_path)
    shutil.rmtree(folder / "ensemble")
    code = main(["serve", "--template-dir", str(folder), "--profile", "instant"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(f"trtclient: error: template folder {folder} has no ensemble")


def test_requirements_without_a_template_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("transformers\n")
    assert main(["serve", "--requirements", str(requirements)]) == 2
    assert "--requirements goes with --template-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    "model", ["ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"]
)
def test_the_pbtxt_reader_sees_the_tensors_protobuf_sees(model: str) -> None:
    text = render_config((TEMPLATES_DIR / model / "config.pbtxt").read_text(), VALUES).text
    reference = text_format.Parse(text, model_config_pb2.ModelConfig())
    ours = parse_pbtxt(text)
    for kind, declared in (("input", reference.input), ("output", reference.output)):
        read = tensors(ours, kind)
        assert list(read) == [tensor.name for tensor in declared]
        for tensor in declared:
            mine = read[tensor.name]
            assert mine.data_type == model_config_pb2.DataType.Name(tensor.data_type)
            assert list(mine.dims) == list(tensor.dims)
            assert mine.optional == (kind == "input" and tensor.optional)


def test_a_missing_folder_or_requirements_file_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--template-dir", str(tmp_path / "nowhere")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"trtclient: error: template folder {tmp_path / 'nowhere'} does not exist or is not a directory; "
        "point --template-dir at a folder holding one sub-folder per model "
        "(e.g. all_models/inflight_batcher_llm)"
    )
    missing = tmp_path / "requirements.txt"
    assert main(["serve", "--template-dir", str(USER_REPOSITORY), "--requirements", str(missing)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"trtclient: error: requirements file {missing} does not exist"
