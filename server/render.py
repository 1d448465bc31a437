"""The model repository renderer: ``config.pbtxt`` templates in, a repository Triton can load out.

One renderer serves the embedded CPU server and the GPU deployment path, and works on the bundled
templates as well as on a user's own ``all_models/inflight_batcher_llm`` of any TensorRT-LLM version.

Rules (the same as TensorRT-LLM's ``tools/fill_template.py``, made safe):

* filling is ``string.Template.safe_substitute``: a ``${key}`` without a value stays verbatim;
* each ``config.pbtxt`` is filled with only the keys it contains (newer upstream ``fill_template``
  rejects keys a file does not have, so a version-agnostic launcher must work per file);
* a ``${key}`` left outside a ``parameters { ... string_value }`` block (max_batch_size, backend,
  decoupled, data types, queue settings, instance counts) is an error: the file would not parse;
* so is a ``${key}`` left in a parameter the backend cannot do without (:data:`REQUIRED_PARAMETERS`);
* any other unfilled parameter is harmless — the backend falls back to its default — and is reported
  in :attr:`RenderedModel.defaults_left`.

:class:`RepositoryOptions` (``repository_options``) is the table of user options and the placeholder each
one fills; it is re-exported here.
"""

from __future__ import annotations

import re
import shutil
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from trtclient.errors import SetupError

__all__ = [
    "REQUIRED_PARAMETERS",
    "MissingValue",
    "RenderResult",
    "RenderedConfig",
    "RenderedModel",
    "TemplateError",
    "fill_template",
    "render_config",
    "render_repository",
    "template_keys",
]

CONFIG_NAME = "config.pbtxt"

REQUIRED_PARAMETERS = frozenset({"gpt_model_path", "gpt_model_type", "tokenizer_dir"})
"""Parameter keys (not placeholder names) whose value the backends need: engine dir, batching, tokenizer."""

_IGNORED_NAMES = ("__pycache__", "*.pyc")


class TemplateError(SetupError):
    """A template cannot be rendered: a needed value is missing, or the template directory is unusable."""


# --- filling --------------------------------------------------------------------------------------


def fill_template(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${key}`` (and ``$key``) placeholders; those without a value stay verbatim."""
    return string.Template(text).safe_substitute(values)


def template_keys(text: str) -> set[str]:
    """Names of the placeholders :func:`fill_template` would fill in ``text`` (comments included)."""
    keys: set[str] = set()
    for match in string.Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            keys.add(name)
    return keys


# --- where each placeholder sits ------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<placeholder>\$\$|\$\{[_a-zA-Z][_a-zA-Z0-9]*\}|\$[_a-zA-Z][_a-zA-Z0-9]*)
    | (?P<open>[{<\[])
    | (?P<close>[}>\]])
    | (?P<colon>:)
    | (?P<separator>[,;])
    | (?P<word>[^\s{}<>\[\]:,;"'\#$]+)
    | (?P<other>.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Slot:
    """One placeholder occurrence in a template, outside comments."""

    key: str
    line: int
    parameter: str | None  # the parameters entry whose string_value holds it; None = structural


@dataclass
class _Frame:
    name: str
    is_list: bool
    parameter_key: str | None = None


def _placeholder_slots(text: str) -> Iterator[_Slot]:
    """Yield every placeholder outside comments, with the parameter entry it fills (if any)."""
    stack: list[_Frame] = []
    field_name: str | None = None
    for token in _TOKEN.finditer(text):
        kind = token.lastgroup
        if kind in ("space", "comment", "separator", "colon", "other"):
            continue
        if kind == "word":
            if stack and stack[-1].is_list:
                continue  # a list element such as -1
            field_name = token.group()
        elif kind == "open":
            enclosing = stack[-1].name if stack and stack[-1].is_list else ""
            stack.append(_Frame(field_name or enclosing, token.group() == "["))
            field_name = None
        elif kind == "close":
            if stack:
                stack.pop()
            field_name = None
        elif kind == "placeholder":
            key = token.group().strip("${}")
            if key:
                yield _Slot(key, _line_of(text, token.start()), None)
            field_name = None
        elif kind == "string":
            content = token.group()[1:-1]
            owner = field_name or (stack[-1].name if stack and stack[-1].is_list else "")
            in_parameters = len(stack) >= 1 and stack[-1].name == "parameters"
            if owner == "key" and in_parameters:
                stack[-1].parameter_key = content
            parameter = _parameter_of(stack) if owner == "string_value" else None
            for key in sorted(template_keys(content)):
                yield _Slot(key, _line_of(text, token.start()), parameter)
            field_name = None


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _parameter_of(stack: list[_Frame]) -> str | None:
    """The key of the ``parameters`` entry a ``value { string_value }`` belongs to, if it is one."""
    if len(stack) >= 2 and stack[-1].name == "value" and stack[-2].name == "parameters":
        return stack[-2].parameter_key or ""
    return None


# --- one file -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingValue:
    """A placeholder the server cannot do without, left unfilled."""

    key: str
    line: int
    parameter: str | None  # the parameter key it fills, or None for a structural placeholder


@dataclass(frozen=True)
class RenderedConfig:
    """One ``config.pbtxt`` after filling."""

    text: str
    keys: frozenset[str]
    filled: frozenset[str]
    defaults_left: tuple[str, ...]
    missing: tuple[MissingValue, ...]


def render_config(text: str, values: Mapping[str, str]) -> RenderedConfig:
    """Fill one template with the values of the keys it contains and classify what stays unfilled."""
    keys = frozenset(template_keys(text))
    own_values = {key: values[key] for key in keys if key in values}
    _check_values(own_values)
    missing: list[MissingValue] = []
    defaults_left: set[str] = set()
    for slot in _placeholder_slots(text):
        if slot.key in own_values:
            continue
        if slot.parameter is None or slot.parameter in REQUIRED_PARAMETERS:
            missing.append(MissingValue(slot.key, slot.line, slot.parameter))
        else:
            defaults_left.add(slot.key)
    return RenderedConfig(
        text=fill_template(text, own_values),
        keys=keys,
        filled=frozenset(own_values),
        defaults_left=tuple(sorted(defaults_left)),
        missing=tuple(missing),
    )


# --- a repository ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedModel:
    """What rendering did to one model directory."""

    name: str
    path: Path
    keys: frozenset[str]
    filled: frozenset[str]
    defaults_left: tuple[str, ...]

    @property
    def config_path(self) -> Path:
        """The rendered ``config.pbtxt``."""
        return self.path / CONFIG_NAME


@dataclass(frozen=True)
class RenderResult:
    """The rendered repository: per model the keys filled and the harmless defaults left."""

    out_dir: Path
    models: tuple[RenderedModel, ...]
    unused_values: tuple[str, ...]

    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the rendered models, sorted."""
        return tuple(model.name for model in self.models)

    @property
    def defaults_left(self) -> dict[str, tuple[str, ...]]:
        """Per model, the unfilled parameter placeholders the backend will default (if any)."""
        return {model.name: model.defaults_left for model in self.models if model.defaults_left}

    def model(self, name: str) -> RenderedModel:
        """The rendered model called ``name``."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)


def render_repository(
    template_dir: str | Path,
    out_dir: str | Path,
    values: Mapping[str, str],
    *,
    models: Iterable[str] | None = None,
) -> RenderResult:
    """Copy each model directory of ``template_dir`` into ``out_dir``, filling its ``config.pbtxt``.

    Every other file (``1/model.py`` and the rest) is copied untouched. A model directory already in
    ``out_dir`` is replaced. An ensemble without a version directory gets an empty ``1/``, which
    Triton needs. Nothing is written when any file still needs a value: :class:`TemplateError` then
    names each key and file.
    """
    source = Path(template_dir).expanduser()
    target = Path(out_dir).expanduser()
    _check_separate(source, target)
    names = _model_names(source, models)

    rendered: list[tuple[str, RenderedConfig]] = []
    problems: list[str] = []
    for name in names:
        config_path = source / name / CONFIG_NAME
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read {config_path}: {exc}") from exc
        result = render_config(text, values)
        if result.missing:
            problems.append(_missing_message(name, config_path, result.missing))
        rendered.append((name, result))
    if problems:
        raise TemplateError("; ".join(problems))

    target.mkdir(parents=True, exist_ok=True)
    done: list[RenderedModel] = []
    for name, result in rendered:
        destination = target / name
        if destination.exists() or destination.is_symlink():
            _remove(destination)
        shutil.copytree(source / name, destination, ignore=shutil.ignore_patterns(*_IGNORED_NAMES))
        (destination / CONFIG_NAME).write_text(result.text, encoding="utf-8")
        if _is_ensemble(result.text) and not _has_version_dir(destination):
            (destination / "1").mkdir()
        done.append(RenderedModel(name, destination, result.keys, result.filled, result.defaults_left))

    used: set[str] = set()
    for model in done:
        used |= model.keys
    return RenderResult(
        out_dir=target,
        models=tuple(done),
        unused_values=tuple(sorted(key for key in values if key not in used)),
    )


def _missing_message(model: str, path: Path, missing: tuple[MissingValue, ...]) -> str:
    keys = sorted({item.key for item in missing})
    wanted = ", ".join(f"${{{key}}}" for key in keys)
    noun = "a value" if len(keys) == 1 else "values"
    return f"config.pbtxt of model {model!r} needs {noun} for {wanted} ({path})"


def _check_values(values: Mapping[str, str]) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            raise TemplateError(
                f"template value {key!r} must be a string, got {type(value).__name__} "
                '(write booleans as "true"/"false" and numbers as text)'
            )
        if any(char in value for char in '"\\\n\r'):
            raise TemplateError(
                f"template value {key!r} contains a double quote, a backslash or a line break, "
                "which a config.pbtxt cannot hold; rename the path or value"
            )


def _check_separate(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise TemplateError(
            f"template directory {source} does not exist or is not a directory; point it at a folder "
            "holding one sub-folder per model (e.g. all_models/inflight_batcher_llm)"
        )
    source_real, target_real = source.resolve(), target.resolve()
    if source_real == target_real or source_real in target_real.parents or target_real in source_real.parents:
        raise TemplateError(
            f"output directory {target} overlaps the template directory {source}; "
            "render into a separate folder"
        )


def _model_names(source: Path, models: Iterable[str] | None) -> list[str]:
    available = sorted(
        entry.name for entry in source.iterdir() if entry.is_dir() and not entry.name.startswith((".", "__"))
    )
    if models is None:
        names = available
        if not names:
            raise TemplateError(f"template directory {source} holds no model directories")
    else:
        names = list(dict.fromkeys(models))
        unknown = [name for name in names if name not in available]
        if unknown:
            raise TemplateError(
                f"template directory {source} has no model {', '.join(map(repr, unknown))}; "
                f"it has: {', '.join(available) or 'nothing'}"
            )
    for name in names:
        if not (source / name / CONFIG_NAME).is_file():
            raise TemplateError(
                f"model directory {source / name} has no {CONFIG_NAME}; every model folder of a template "
                "directory needs one (remove the folder or add the file)"
            )
    return names


_ENSEMBLE = re.compile(r'^\s*platform\s*:\s*"ensemble"', re.MULTILINE)


def _is_ensemble(text: str) -> bool:
    return _ENSEMBLE.search(text) is not None


def _has_version_dir(model_dir: Path) -> bool:
    return any(entry.is_dir() and entry.name.isdigit() for entry in model_dir.iterdir())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
