"""Limits of a TensorRT-LLM engine, read from the ``config.json`` in its engine directory.

Two layouts exist (TensorRT-LLM ``tensorrt_llm/builder.py`` ``EngineConfig.to_dict`` and the older
``cpp/tensorrt_llm/runtime/gptJsonConfig.cpp``):

* ``trtllm-build`` (0.8 and later): ``pretrained_config`` (architecture, dtype, vocab_size and
  ``mapping`` with ``world_size`` / ``tp_size`` / ``pp_size``) and ``build_config`` (max_batch_size,
  max_beam_width, max_input_len, max_seq_len — ``max_output_len`` before 0.11 — and max_num_tokens);
* the pre-0.8 ``examples/*/build.py`` engines: one ``builder_config`` object (name, precision,
  tensor_parallel, pipeline_parallel, max_batch_size, max_input_len, max_output_len, ...).

Before TensorRT-LLM 0.11 the sequence limit was ``max_output_len``; ``max_seq_len`` is then taken as
``max_input_len + max_output_len``, as trtllm-build 0.11 itself converted it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trtclient.errors import SetupError

__all__ = ["EngineConfig", "EngineConfigError", "engine_values", "parse_engine_config", "read_engine_config"]

ENGINE_CONFIG_NAME = "config.json"

Layout = Literal["build_config", "builder_config"]


class EngineConfigError(SetupError):
    """An engine directory has no usable ``config.json``."""


@dataclass(frozen=True)
class EngineConfig:
    """What the launcher and the repository templates need to know about an engine."""

    engine_dir: Path
    layout: Layout
    max_batch_size: int
    max_beam_width: int
    max_input_len: int
    max_seq_len: int
    max_num_tokens: int | None
    tp_size: int
    pp_size: int
    world_size: int
    architecture: str | None = None
    dtype: str | None = None
    vocab_size: int | None = None
    version: str | None = None

    @property
    def config_path(self) -> Path:
        """The ``config.json`` this was read from."""
        return self.engine_dir / ENGINE_CONFIG_NAME

    def template_values(self) -> dict[str, str]:
        """The repository placeholders an engine decides: ``triton_max_batch_size``, ``max_beam_width``."""
        return {
            "triton_max_batch_size": str(self.max_batch_size),
            "max_beam_width": str(self.max_beam_width),
        }


def read_engine_config(engine_dir: str | Path) -> EngineConfig:
    """Read ``<engine_dir>/config.json``; :class:`EngineConfigError` says what is wrong with it."""
    directory = Path(engine_dir).expanduser()
    if not directory.is_dir():
        raise EngineConfigError(
            f"engine directory {directory} does not exist; build the engine first "
            "(trtllm-build --output_dir ...) or point engine_dir at its output directory"
        )
    path = directory / ENGINE_CONFIG_NAME
    if not path.is_file():
        raise EngineConfigError(
            f"engine directory {directory} has no {ENGINE_CONFIG_NAME}; engine_dir must be the directory "
            "trtllm-build wrote (config.json next to rank0.engine)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EngineConfigError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineConfigError(f"cannot read {path}: {exc}") from exc
    return parse_engine_config(data, engine_dir=directory)


def engine_values(engine_dir: str | Path) -> dict[str, str]:
    """Template values from an engine: ``triton_max_batch_size``, ``max_beam_width`` and ``world_size``."""
    config = read_engine_config(engine_dir)
    return {**config.template_values(), "world_size": str(config.world_size)}


def parse_engine_config(data: object, *, engine_dir: str | Path) -> EngineConfig:
    """Build an :class:`EngineConfig` from the parsed ``config.json`` of ``engine_dir``."""
    directory = Path(engine_dir)
    source = directory / ENGINE_CONFIG_NAME
    if not isinstance(data, Mapping):
        raise EngineConfigError(f"{source} is not a TensorRT-LLM engine config: expected a JSON object")
    if "build_config" in data:
        return _from_build_config(data, directory, source)
    if "builder_config" in data:
        return _from_builder_config(data, directory, source)
    raise EngineConfigError(
        f"{source} is not a TensorRT-LLM engine config: it has neither 'build_config' nor the legacy "
        "'builder_config'"
    )


def _from_build_config(data: Mapping[str, Any], directory: Path, source: Path) -> EngineConfig:
    build = _section(data, "build_config", source)
    pretrained = _section(data, "pretrained_config", source, required=False)
    mapping = _section(pretrained, "mapping", source, required=False, prefix="pretrained_config.")
    reader = _Reader(source)
    max_input_len = reader.integer(build, "build_config.max_input_len")
    if build.get("max_seq_len") is not None:
        max_seq_len = reader.integer(build, "build_config.max_seq_len")
    elif build.get("max_output_len") is not None:
        max_seq_len = max_input_len + reader.integer(build, "build_config.max_output_len")
    else:
        raise EngineConfigError(f"{source} has neither build_config.max_seq_len nor max_output_len")
    tp_size = reader.integer(mapping, "pretrained_config.mapping.tp_size", default=1)
    pp_size = reader.integer(mapping, "pretrained_config.mapping.pp_size", default=1)
    cp_size = reader.integer(mapping, "pretrained_config.mapping.cp_size", default=1)
    world_size = reader.integer(
        mapping, "pretrained_config.mapping.world_size", default=tp_size * pp_size * cp_size
    )
    return EngineConfig(
        engine_dir=directory,
        layout="build_config",
        max_batch_size=reader.integer(build, "build_config.max_batch_size"),
        max_beam_width=reader.integer(build, "build_config.max_beam_width", default=1),
        max_input_len=max_input_len,
        max_seq_len=max_seq_len,
        max_num_tokens=reader.optional_integer(build, "build_config.max_num_tokens"),
        tp_size=tp_size,
        pp_size=pp_size,
        world_size=world_size,
        architecture=reader.text(pretrained, "pretrained_config.architecture"),
        dtype=reader.text(pretrained, "pretrained_config.dtype"),
        vocab_size=reader.optional_integer(pretrained, "pretrained_config.vocab_size"),
        version=reader.text(data, "version"),
    )


def _from_builder_config(data: Mapping[str, Any], directory: Path, source: Path) -> EngineConfig:
    builder = _section(data, "builder_config", source)
    reader = _Reader(source)
    max_input_len = reader.integer(builder, "builder_config.max_input_len")
    tp_size = reader.integer(builder, "builder_config.tensor_parallel", default=1)
    pp_size = reader.integer(builder, "builder_config.pipeline_parallel", default=1)
    return EngineConfig(
        engine_dir=directory,
        layout="builder_config",
        max_batch_size=reader.integer(builder, "builder_config.max_batch_size"),
        max_beam_width=reader.integer(builder, "builder_config.max_beam_width", default=1),
        max_input_len=max_input_len,
        max_seq_len=max_input_len + reader.integer(builder, "builder_config.max_output_len"),
        max_num_tokens=reader.optional_integer(builder, "builder_config.max_num_tokens"),
        tp_size=tp_size,
        pp_size=pp_size,
        world_size=tp_size * pp_size,
        architecture=reader.text(builder, "builder_config.name"),
        dtype=reader.text(builder, "builder_config.precision"),
        vocab_size=reader.optional_integer(builder, "builder_config.vocab_size"),
        version=reader.text(data, "version"),
    )


def _section(
    data: Mapping[str, Any], name: str, source: Path, *, required: bool = True, prefix: str = ""
) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise EngineConfigError(f"{source}: {prefix}{name} must be a JSON object")
    return value


@dataclass(frozen=True)
class _Reader:
    """Typed field access with messages naming the file and the dotted field."""

    source: Path

    def integer(self, section: Mapping[str, Any], dotted: str, *, default: int | None = None) -> int:
        value = section.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            if default is None:
                raise EngineConfigError(
                    f"{self.source} has no {dotted}; is this the config.json of a TensorRT-LLM engine?"
                )
            return default
        return self._positive(value, dotted)

    def optional_integer(self, section: Mapping[str, Any], dotted: str) -> int | None:
        value = section.get(dotted.rsplit(".", 1)[-1])
        return None if value is None else self._positive(value, dotted)

    def text(self, section: Mapping[str, Any], dotted: str) -> str | None:
        value = section.get(dotted.rsplit(".", 1)[-1])
        return value if isinstance(value, str) else None

    def _positive(self, value: object, dotted: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EngineConfigError(f"{self.source}: {dotted} must be a positive integer, got {value!r}")
        return value
