"""Render a user's own model repository with the CPU engine standing in for its ``tensorrt_llm`` model.

The user's template folder (TensorRT-LLM's ``inflight_batcher_llm`` layout of any version, or an edited
copy) is rendered as it is — ensemble, preprocessing, postprocessing and BLS run unchanged. Only the
engine model (``backend: "tensorrtllm"``, or ``${triton_backend}``) is replaced by the embedded CPU
engine's model directory, keeping what the rest of the repository expects of it: its name, max batch
size and decoupled mode, and every input it declares. An optional input the CPU engine does not take is
declared anyway so the ensemble still loads (the engine reads the inputs it knows by name, older names such as
``min_length`` included, and ignores the others); a required one, a tensor whose type
or shape differs, or an ensemble step that maps a tensor the engine lacks, is one error naming the model,
the file and the tensor.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.pbtxt import Message, PbtxtError, Tensor, first, parse_pbtxt, tensors
from trtclient.server.render import CONFIG_NAME, RenderResult, TemplateError, render_config, render_repository

__all__ = ["ENGINE_MODEL", "StandIn", "render_with_stand_in", "require_template_folder"]

log = logging.getLogger("trtclient.server")

ENGINE_MODEL = "tensorrt_llm"
"""The CPU engine's model directory in the bundled templates."""

_ENGINE_BACKEND = re.compile(r'^\s*backend\s*:\s*"(tensorrtllm|\$\{triton_backend\})"', re.MULTILINE)
_NAME_LINE = re.compile(r'^name\s*:\s*"[^"]*"', re.MULTILINE)


@dataclass(frozen=True)
class StandIn:
    """What :func:`render_with_stand_in` did."""

    render: RenderResult
    ensembles: tuple[str, ...]
    engine_models: tuple[str, ...]
    carried_inputs: dict[str, tuple[str, ...]]
    """Per engine model, optional inputs of the user's config that the CPU engine's config lacks."""

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every model of the rendered repository."""
        return tuple(sorted({*self.render.model_names, *self.engine_models}))


def render_with_stand_in(
    template_dir: str | Path,
    out_dir: str | Path,
    values: Mapping[str, str],
    *,
    engine_templates: Path = TEMPLATES_DIR,
) -> StandIn:
    """Render ``template_dir`` into ``out_dir`` with the CPU engine in place of its engine model(s)."""
    source = Path(template_dir).expanduser()
    require_template_folder(source)
    configs = _read_configs(source, values)
    ensembles = tuple(name for name, config in configs.items() if first(config, "platform") == "ensemble")
    if not ensembles:
        raise TemplateError(
            f"template folder {source} has no ensemble: none of its models ({', '.join(configs) or 'none'}) "
            'has platform: "ensemble" in its config.pbtxt; the CPU engine stands in for the tensorrt_llm '
            "model of a TensorRT-LLM repository (ensemble, preprocessing, tensorrt_llm, postprocessing)"
        )
    engines = tuple(
        name
        for name in configs
        if _ENGINE_BACKEND.search((source / name / CONFIG_NAME).read_text(encoding="utf-8", errors="replace"))
    )
    if not engines:
        raise TemplateError(
            f"template folder {source} has no model for the CPU engine to stand in for: no config.pbtxt "
            'there has backend: "tensorrtllm" (or "${triton_backend}")'
        )
    if len(engines) == 1:  # the BLS calls the engine model by this name
        values = {**values, "tensorrt_llm_model_name": engines[0]}
    others = [name for name in configs if name not in engines]
    render = render_repository(source, out_dir, values, models=others)
    carried: dict[str, tuple[str, ...]] = {}
    for name in engines:
        carried[name] = _write_engine_model(
            name, source, render.out_dir, configs, ensembles, values, engine_templates
        )
        if carried[name]:
            log.warning(
                "model %r: optional inputs %s of %s are not in the CPU engine's config; declared there so "
                "the ensemble loads (the engine uses those it knows under these names and ignores the rest)",
                name,
                ", ".join(carried[name]),
                source / name / CONFIG_NAME,
            )
    return StandIn(render, ensembles, engines, carried)


def require_template_folder(source: Path) -> None:
    """Raise :class:`TemplateError` unless ``source`` is a directory."""
    if not source.is_dir():
        raise TemplateError(
            f"template folder {source} does not exist or is not a directory; point --template-dir at a "
            "folder holding one sub-folder per model (e.g. all_models/inflight_batcher_llm)"
        )


def _read_configs(source: Path, values: Mapping[str, str]) -> dict[str, Message]:
    configs: dict[str, Message] = {}
    for entry in sorted(source.iterdir()):
        path = entry / CONFIG_NAME
        if not entry.is_dir() or entry.name.startswith((".", "__")) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read {path}: {exc}") from exc
        try:
            configs[entry.name] = parse_pbtxt(render_config(text, values).text)
        except PbtxtError as exc:
            raise TemplateError(
                f"config.pbtxt of model {entry.name!r} does not parse ({path}): {exc}"
            ) from None
    return configs


def _write_engine_model(
    name: str,
    source: Path,
    out: Path,
    configs: Mapping[str, Message],
    ensembles: tuple[str, ...],
    values: Mapping[str, str],
    engine_templates: Path,
) -> tuple[str, ...]:
    """Write the CPU engine's model as ``out/name``; return the user's optional inputs its config lacked."""
    theirs = configs[name]
    their_path = source / name / CONFIG_NAME
    own_values = dict(values)
    batch = first(theirs, "max_batch_size")
    if isinstance(batch, int):
        own_values["triton_max_batch_size"] = str(batch)
    decoupled = first(first(theirs, "model_transaction_policy", {}) or {}, "decoupled")
    if decoupled in ("true", "false"):
        own_values["decoupled_mode"] = str(decoupled)
    template = engine_templates / ENGINE_MODEL
    rendered = render_config((template / CONFIG_NAME).read_text(encoding="utf-8"), own_values)
    if rendered.missing:
        keys = ", ".join(sorted({f"${{{m.key}}}" for m in rendered.missing}))
        raise TemplateError(f"the CPU engine's config needs values for {keys}")
    ours = parse_pbtxt(rendered.text)
    our_inputs, our_outputs = tensors(ours, "input"), tensors(ours, "output")
    problems: list[str] = []
    beams = _parameter(theirs, "max_beam_width")
    if beams not in (None, "", "1") and not beams.startswith("${"):
        problems.append(f"parameter max_beam_width is {beams}; the CPU engine decodes one beam (set it to 1)")
    carried: list[Tensor] = []
    for tensor in tensors(theirs, "input").values():
        own = our_inputs.get(tensor.name)
        if own is None:
            if tensor.optional:
                carried.append(tensor)
            else:
                problems.append(f"required input {tensor.name!r} is not one the CPU engine takes")
        elif own.data_type != tensor.data_type:
            problems.append(
                f"input {tensor.name!r} is {tensor.data_type} there, {own.data_type} in the CPU engine"
            )
    known_inputs = {*our_inputs, *(t.name for t in carried)}
    for ensemble in ensembles:
        for step in _steps(configs[ensemble], name):
            for key in _map_keys(step, "input_map"):
                if key not in known_inputs:
                    problems.append(f"ensemble {ensemble!r} feeds input {key!r}, which the CPU engine lacks")
            for key in _map_keys(step, "output_map"):
                if key not in our_outputs:
                    problems.append(f"ensemble {ensemble!r} reads output {key!r}, which the CPU engine lacks")
    if problems:
        raise TemplateError(
            f"the CPU engine cannot stand in for model {name!r} ({their_path}): " + "; ".join(problems)
        )
    text = _NAME_LINE.sub(f'name: "{name}"', rendered.text, count=1)
    if carried:
        text += "\n# optional inputs of the original config, declared so its ensemble loads\n"
        text += "".join(tensor.to_pbtxt("input") + "\n" for tensor in carried)
    destination = out / name
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(template, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (destination / CONFIG_NAME).write_text(text, encoding="utf-8")
    return tuple(tensor.name for tensor in carried)


def _parameter(config: Message, key: str) -> str | None:
    for entry in config.get("parameters", []):
        if isinstance(entry, dict) and first(entry, "key") == key:
            value = first(entry, "value", {})
            return str(first(value, "string_value", "")) if isinstance(value, dict) else None
    return None


def _steps(ensemble: Message, model: str) -> list[Message]:
    scheduling = first(ensemble, "ensemble_scheduling", {}) or {}
    return [s for s in scheduling.get("step", []) if isinstance(s, dict) and first(s, "model_name") == model]


def _map_keys(step: Message, field: str) -> list[str]:
    return [str(first(entry, "key")) for entry in step.get(field, []) if isinstance(entry, dict)]
