"""The build spec: everything ``trtclient build`` needs to turn a Hugging Face checkpoint into an engine.

One declarative record, read from a TOML or JSON file, from flags, or from both (flags win). Options left
unset are not passed to the tools, so each TensorRT-LLM release applies its own default. Field names are
the tools' own option names, so a spec reads like the commands it produces.

Example (``llama3-8b-gptq.toml``, the Jetson Orin recipe)::

    model_dir = "Meta-Llama-3-8B-Instruct-GPTQ"
    engine_dir = "engines/llama3-8b-int4-gptq"
    dtype = "float16"
    weight_only_precision = "int4_gptq"
    per_group = true
    gemm_plugin = "float16"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trtclient.errors import SetupError

__all__ = ["PATH_FIELDS", "BuildSpec", "SpecError", "load_spec_file", "make_spec"]

Dtype = Literal["float16", "bfloat16", "float32", "auto"]
WeightOnlyPrecision = Literal["int8", "int4", "int8_gptq", "int4_gptq", "int4_awq"]
GROUPED_PRECISIONS = frozenset({"int8_gptq", "int4_gptq", "int4_awq"})

PATH_FIELDS = (
    "model_dir",
    "engine_dir",
    "checkpoint_dir",
    "quant_ckpt_path",
    "examples_dir",
    "convert_script",
)
"""Fields holding paths; in a spec file they are relative to the file's directory."""


class SpecError(SetupError):
    """A build spec is invalid; the message names the field and the fix."""


class BuildSpec(BaseModel):
    """A Hugging Face checkpoint → TensorRT-LLM engine build, in the tools' own terms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path = Field(description="Hugging Face checkpoint directory (convert_checkpoint --model_dir)")
    engine_dir: Path = Field(description="where the engine is written (trtllm-build --output_dir)")
    checkpoint_dir: Path | None = Field(
        None, description="intermediate TensorRT-LLM checkpoint; default: <engine_dir>-checkpoint"
    )
    model_family: str = Field("llama", description="example folder holding convert_checkpoint.py")
    examples_dir: Path | None = Field(None, description="the examples/ folder of a TensorRT-LLM checkout")
    convert_script: Path | None = Field(None, description="explicit path of convert_checkpoint.py")

    # convert_checkpoint.py: precision, parallelism (decided here, stored in the checkpoint), quantization
    dtype: Dtype = "float16"
    tp_size: int = Field(1, ge=1)
    pp_size: int = Field(1, ge=1)
    use_weight_only: bool = False
    weight_only_precision: WeightOnlyPrecision | None = None
    per_group: bool = False
    group_size: int | None = Field(None, ge=1)
    quant_ckpt_path: Path | None = None
    convert_workers: int | None = Field(None, ge=1)

    # trtllm-build: plugins (None = the release's default), limits, parallel build
    gemm_plugin: str | None = None
    gpt_attention_plugin: str | None = None
    remove_input_padding: bool | None = None
    paged_kv_cache: bool | None = None
    context_fmha: bool | None = None
    use_paged_context_fmha: bool | None = None
    tokens_per_block: int | None = Field(None, ge=1)
    max_batch_size: int | None = Field(None, ge=1)
    max_input_len: int | None = Field(None, ge=1)
    max_seq_len: int | None = Field(None, ge=1)
    max_output_len: int | None = Field(None, ge=1)
    max_num_tokens: int | None = Field(None, ge=1)
    max_beam_width: int | None = Field(None, ge=1)
    logits_dtype: Literal["float16", "float32"] | None = None
    workers: int | None = Field(None, ge=1)

    extra_convert_args: tuple[str, ...] = ()
    extra_build_args: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _weight_only_implied(cls, data: Any) -> Any:
        # Naming a weight-only precision means weight-only quantization; requiring both flags adds nothing.
        if isinstance(data, dict) and data.get("weight_only_precision") and "use_weight_only" not in data:
            return {**data, "use_weight_only": True}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> BuildSpec:
        if self.weight_only_precision and not self.use_weight_only:
            raise ValueError("weight_only_precision is set but use_weight_only is false; drop one of them")
        if self.per_group and self.weight_only_precision not in GROUPED_PRECISIONS:
            raise ValueError(
                "per_group applies to the GPTQ/AWQ precisions (int4_gptq, int8_gptq, int4_awq); "
                f"weight_only_precision is {self.weight_only_precision or 'unset'}"
            )
        if self.max_input_len and self.max_seq_len and self.max_input_len >= self.max_seq_len:
            raise ValueError(
                f"max_seq_len ({self.max_seq_len}) counts prompt and output, so it must exceed "
                f"max_input_len ({self.max_input_len})"
            )
        if (
            self.max_seq_len
            and self.max_output_len
            and (self.max_input_len is None or self.max_input_len + self.max_output_len != self.max_seq_len)
        ):
            raise ValueError(
                "give max_seq_len or max_output_len, not both (max_seq_len = max_input_len + max_output_len)"
            )
        if self.use_paged_context_fmha and (self.paged_kv_cache is False or self.context_fmha is False):
            raise ValueError("use_paged_context_fmha needs the paged KV cache and context_fmha enabled")
        return self

    @property
    def world_size(self) -> int:
        """Ranks the engine runs on: tensor × pipeline parallelism."""
        return self.tp_size * self.pp_size

    @property
    def resolved_checkpoint_dir(self) -> Path:
        """The intermediate checkpoint directory (``<engine_dir>-checkpoint`` unless set)."""
        return self.checkpoint_dir or self.engine_dir.with_name(self.engine_dir.name + "-checkpoint")

    def sequence_limits(self) -> tuple[int | None, int | None]:
        """``(max_seq_len, max_output_len)`` as far as the spec determines them."""
        seq, out = self.max_seq_len, self.max_output_len
        if seq is None and out is not None and self.max_input_len is not None:
            seq = self.max_input_len + out
        if out is None and seq is not None and self.max_input_len is not None:
            out = seq - self.max_input_len
        return seq, out


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON spec file; relative paths in it are made relative to its directory."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read build spec {path}: {exc.strerror or exc}") from exc
    try:
        data: Any = _parse_toml(text, path) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        kind = "TOML" if path.suffix == ".toml" else "JSON (use a .toml name for TOML)"
        raise SpecError(f"build spec {path} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"build spec {path} must be a table of options, not {type(data).__name__}")
    base = path.resolve().parent
    for name in PATH_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            data[name] = str(base / Path(value).expanduser())
    return data


def _parse_toml(text: str, path: Path) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise SpecError(
            f"reading {path} needs Python 3.11 or newer (tomllib); write the spec as JSON"
        ) from None
    return tomllib.loads(text)


def make_spec(*layers: Mapping[str, Any], source: str = "build spec") -> BuildSpec:
    """Merge option layers (later ones win; ``None`` values are skipped) and validate them as a spec."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({key: value for key, value in layer.items() if value is not None})
    try:
        return BuildSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(_describe(exc, source)) from None


def _describe(exc: ValidationError, source: str) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown option {where!r}")
        elif error["type"] == "missing":
            problems.append(f"{where} is required (--{where.replace('_', '-')} or the spec key {where})")
        elif where:
            problems.append(f"{where}: {error['msg']}")
        else:
            problems.append(str(error["msg"]).removeprefix("Value error, "))
    return f"{source}: " + "; ".join(problems)
