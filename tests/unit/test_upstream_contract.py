"""Upstream's model interface, per TensorRT-LLM version, checked against what we render.

The contract is data: ``fixtures/upstream_contract/<version>.txt`` states, for TensorRT-LLM's
``inflight_batcher_llm`` at tensorrtllm_backend v0.9.0 (Triton r24.04), v0.12.0, v0.19.0 and TensorRT-LLM
1.x, every tensor's name, data type, dims and optional flag, and the tensors the ensemble maps to and from
``tensorrt_llm`` (sources in each file's header and in docs/upstream-contract.md). The checks:

* the bundled ensemble offers the 1.x interface exactly, and every older input under its name or its
  documented new name;
* for every version, a folder with upstream's ensemble and ``tensorrt_llm`` configs renders with the CPU
  engine standing in, and the engine model it gets declares every tensor upstream's declares, with the
  same type and dims, so Triton accepts the ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.render import render_repository
from trtclient.server.stand_in import render_with_stand_in

CONTRACT_DIR = Path(__file__).parent / "fixtures" / "upstream_contract"
VERSIONS = ("v0.9.0", "v0.12.0", "v0.19.0", "v1.x")
VALUES = EmbeddedTriton().repository_values(Path("/cache/engine"), Path("/cache/tokenizer"))

RENAMED_AFTER_0_19 = {"min_length": "min_tokens", "random_seed": "seed"}
"""Inputs (ensemble and engine) named differently up to v0.19.0 and in 1.x (the version files show it)."""

DROPPED_AFTER_0_12 = {"image_input"}
"""Ensemble inputs of v0.12.0 that later ensembles lack (a fixed-size image for multimodal models)."""


@dataclass(frozen=True)
class Row:
    """One tensor of the contract."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool


def load(version: str) -> dict[str, list[Any]]:
    """The sections of a contract file: tensor rows, or plain names for the ensemble's maps."""
    sections: dict[str, list[Any]] = {}
    current: list[Any] = []
    for line in (CONTRACT_DIR / f"{version}.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        elif len(line.split()) == 1:
            current.append(line.strip())
        else:
            name, data_type, dims, *flags = line.split()
            data_type = VALUES.get(data_type[2:-1], data_type) if data_type.startswith("${") else data_type
            data_type = data_type.removeprefix("TYPE_")
            current.append(
                Row(name, data_type, tuple(int(d) for d in dims.split(",")), flags == ["optional"])
            )
    return sections


def declared(tensors: Any) -> dict[str, Row]:
    return {
        t.name: Row(
            t.name,
            model_config_pb2.DataType.Name(t.data_type).removeprefix("TYPE_"),
            tuple(t.dims),
            bool(getattr(t, "optional", False)),
        )
        for t in tensors
    }


def parse(path: Path) -> Any:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bundled")
    render_repository(TEMPLATES_DIR, out, VALUES)
    return {name: parse(out / name / "config.pbtxt") for name in ("ensemble", "tensorrt_llm")}


def test_every_version_states_the_models_the_checks_need() -> None:
    for version in VERSIONS:
        sections = load(version)
        for section in ("ensemble input", "ensemble output", "tensorrt_llm input", "tensorrt_llm output"):
            assert sections.get(section), f"{version}: {section} is empty"
        assert "input_ids" in sections["ensemble -> tensorrt_llm input_map"]


def test_the_bundled_ensemble_offers_the_1x_interface_exactly(ours: dict[str, Any]) -> None:
    contract = load("v1.x")
    assert declared(ours["ensemble"].input) == {row.name: row for row in contract["ensemble input"]}
    assert declared(ours["ensemble"].output) == {row.name: row for row in contract["ensemble output"]}


def test_dropped_inputs_are_gone_from_the_later_versions() -> None:
    for version in ("v0.19.0", "v1.x"):
        names = {row.name for row in load(version)["ensemble input"]}
        assert not names & DROPPED_AFTER_0_12, version
    assert {row.name for row in load("v0.12.0")["ensemble input"]} >= DROPPED_AFTER_0_12


def dims_fit(upstream: tuple[int, ...], mine: tuple[int, ...]) -> bool:
    return len(upstream) == len(mine) and all(
        a == b or -1 in (a, b) for a, b in zip(upstream, mine, strict=True)
    )


@pytest.mark.parametrize("version", VERSIONS[:-1])
def test_older_ensemble_inputs_are_ours_under_their_name_or_new_name(
    version: str, ours: dict[str, Any]
) -> None:
    mine = declared(ours["ensemble"].input)
    for row in load(version)["ensemble input"]:
        if row.name in DROPPED_AFTER_0_12:
            continue
        own = mine.get(RENAMED_AFTER_0_19.get(row.name, row.name))
        assert own is not None, f"{version} ensemble input {row.name} has no counterpart"
        assert own.data_type == row.data_type, row
        assert dims_fit(row.dims, own.dims), row
        assert own.optional or not row.optional, f"{row.name} is optional upstream but required here"


def upstream_folder(version: str, root: Path) -> Path:
    """A template folder holding upstream's ensemble and tensorrt_llm interface of ``version``."""
    contract = load(version)

    def block(kind: str, rows: list[Row]) -> str:
        lines = []
        for row in rows:
            optional = " optional: true" if row.optional else ""
            kind_name = f'{kind} {{ name: "{row.name}"'
            lines.append(f"{kind_name} data_type: TYPE_{row.data_type} dims: {list(row.dims)}{optional} }}")
        return "\n".join(lines)

    maps = " ".join(
        f'input_map {{ key: "{k}" value: "_{k}" }}' for k in contract["ensemble -> tensorrt_llm input_map"]
    )
    maps += " " + " ".join(
        f'output_map {{ key: "{k}" value: "_{k}" }}' for k in contract["ensemble -> tensorrt_llm output_map"]
    )
    ensemble = (
        'name: "ensemble"\nplatform: "ensemble"\nmax_batch_size: ${triton_max_batch_size}\n'
        + block("input", contract["ensemble input"])
        + "\n"
        + block("output", contract["ensemble output"])
        + f'\nensemble_scheduling {{ step [ {{ model_name: "tensorrt_llm" model_version: -1 {maps} }} ] }}\n'
    )
    engine = (
        'name: "tensorrt_llm"\nbackend: "tensorrtllm"\nmax_batch_size: ${triton_max_batch_size}\n'
        "model_transaction_policy { decoupled: ${decoupled_mode} }\n"
        + block("input", contract["tensorrt_llm input"])
        + "\n"
        + block("output", contract["tensorrt_llm output"])
        + '\nparameters { key: "gpt_model_path" value: { string_value: "${engine_dir}" } }\n'
    )
    folder = root / version
    for name, text in (("ensemble", ensemble), ("tensorrt_llm", engine)):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.pbtxt").write_text(text)
    return folder


@pytest.mark.parametrize("version", VERSIONS)
def test_the_stand_in_declares_every_engine_tensor_of_each_version(version: str, tmp_path: Path) -> None:
    contract = load(version)
    result = render_with_stand_in(upstream_folder(version, tmp_path), tmp_path / "out", VALUES)
    engine = parse(tmp_path / "out" / "tensorrt_llm" / "config.pbtxt")
    inputs, outputs = declared(engine.input), declared(engine.output)
    for row in contract["tensorrt_llm input"]:
        assert row.name in inputs, f"{version}: input {row.name} missing"
        assert (inputs[row.name].data_type, inputs[row.name].dims) == (row.data_type, row.dims), row
        assert inputs[row.name].optional or not row.optional, row
    for row in contract["tensorrt_llm output"]:
        assert outputs.get(row.name) == row, f"{version}: output {row.name}"
    assert set(contract["ensemble -> tensorrt_llm input_map"]) <= set(inputs)
    assert set(contract["ensemble -> tensorrt_llm output_map"]) <= set(outputs)
    # what the CPU engine's own config lacks is only the inputs renamed after v0.19.0
    assert set(result.carried_inputs["tensorrt_llm"]) <= set(RENAMED_AFTER_0_19)
