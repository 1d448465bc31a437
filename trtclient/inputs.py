"""Request building: prompt + inputs validated into a GenerateRequest, the input names a model
accepts (``ModelInputs``, with the TRT-LLM renames), and the JSON body to POST."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from trtclient import errors
from trtclient.schema import GenerateRequest
from trtclient.streaming import TextMode

__all__ = [
    "INPUT_ALIASES",
    "ModelInputs",
    "build_body",
    "encode_body",
    "make_request",
    "validation_error",
]


#: Logical input name -> every spelling a server may use, newest first. TRT-LLM 0.20 renamed
#: min_length to min_tokens and random_seed to seed (``triton-protocol.md`` §2.1); an old name sent
#: to a new server (or the reverse) silently becomes an ignored request parameter.
INPUT_ALIASES: dict[str, tuple[str, ...]] = {
    "min_tokens": ("min_tokens", "min_length"),
    "min_length": ("min_tokens", "min_length"),
    "seed": ("seed", "random_seed"),
    "random_seed": ("seed", "random_seed"),
}


def make_request(prompt: str | GenerateRequest, fields: Mapping[str, Any]) -> GenerateRequest:
    """Validate a prompt plus keyword inputs (or a ready request) into a GenerateRequest.

    Raises :class:`~trtclient.errors.RequestValidationError` naming the first bad field.
    """
    if isinstance(prompt, GenerateRequest):
        if not fields:
            return prompt
        merged = prompt.model_dump(exclude_none=True)
        merged.update(fields)
        data: dict[str, Any] = merged
    elif isinstance(prompt, str):
        data = {"text_input": prompt, **fields}
    else:
        raise errors.RequestValidationError(
            f"the prompt must be a str or a GenerateRequest, not {type(prompt).__name__}", field="text_input"
        )
    data = {key: value for key, value in data.items() if value is not None}
    try:
        return GenerateRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> errors.RequestValidationError:
    """Turn pydantic's report into one readable line naming the field."""
    details = exc.errors()
    first = details[0]
    loc = first.get("loc", ())
    field = str(loc[0]) if loc else None
    if field is None:  # a whole-request check names its field in quotes or first
        named = re.match(r"(?:Value error, )?(?:extra input )?'?(\w+)'?", str(first.get("msg", "")))
        field = named.group(1) if named else None
    where = field or ""
    for part in loc[1:]:
        if isinstance(part, int):
            where += f"[{part}]"  # list positions; union branch tags ('str', 'list[str]') are left out
    messages: list[str] = []
    for detail in details:
        if detail.get("loc", ())[:1] == loc[:1]:
            text = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
            if text not in messages:
                messages.append(text)
    got = first.get("input")
    shown = "" if first.get("type") in ("missing", "value_error") else f" (got {got!r:.60})"
    prefix = f"{where}: " if where else ""
    return errors.RequestValidationError(
        f"invalid request: {prefix}{' or '.join(messages)}{shown}", field=field
    )


_DATATYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "BYTES": (str,),
    "BOOL": (bool,),
    "FP16": (int, float),
    "FP32": (int, float),
    "FP64": (int, float),
    "BF16": (int, float),
}


@dataclass(frozen=True)
class ModelInputs(Mapping[str, str]):
    """The inputs a model accepts, read from its metadata: a mapping of input name -> datatype.

    ``supports("min_tokens")`` also answers for the older spelling; ``resolve()`` gives the name to
    send. ``text_mode`` says whether streamed ``text_output`` is a delta or cumulative text.
    """

    model: str
    datatypes: dict[str, str]
    platform: str = ""
    outputs: tuple[str, ...] = ()
    text_mode: TextMode = "delta"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _names: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], text_mode: TextMode = "delta") -> ModelInputs:
        """Build from the JSON of ``GET /v2/models/{model}``."""
        inputs = metadata.get("inputs") or []
        datatypes = {str(item["name"]): str(item.get("datatype", "")) for item in inputs if "name" in item}
        shapes = {
            str(item["name"]): tuple(int(dim) for dim in item.get("shape") or ())
            for item in inputs
            if "name" in item
        }
        outputs = tuple(str(item["name"]) for item in metadata.get("outputs") or [] if "name" in item)
        return cls(
            model=str(metadata.get("name", "")),
            datatypes=datatypes,
            platform=str(metadata.get("platform", "")),
            outputs=outputs,
            text_mode=text_mode,
            shapes=shapes,
            _names=tuple(sorted(datatypes)),
        )

    def __repr__(self) -> str:
        return f"ModelInputs(model={self.model!r}, inputs={list(self)}, text_mode={self.text_mode!r})"

    def __getitem__(self, name: str) -> str:
        return self.datatypes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names or sorted(self.datatypes))

    def __len__(self) -> int:
        return len(self.datatypes)

    def resolve(self, name: str) -> str | None:
        """The name this model uses for a logical input, or None when it has none."""
        if name in self.datatypes:
            return name
        for candidate in INPUT_ALIASES.get(name, ()):
            if candidate in self.datatypes:
                return candidate
        return None

    def supports(self, name: str) -> bool:
        """Whether the model accepts this input under any of its spellings."""
        return self.resolve(name) is not None


def build_body(
    request: GenerateRequest, inputs: ModelInputs | None, *, stream: bool | None = None
) -> dict[str, Any]:
    """The JSON object to POST: inputs under the names ``inputs`` accepts, plus id and parameters.

    With ``inputs`` None (metadata checks off) names are sent as given. ``stream`` fills the
    ``stream`` input when the request leaves it unset and the model has one.
    """
    body: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in request.input_values().items():
        target = name
        if inputs is not None:
            resolved = inputs.resolve(name)
            if resolved is None:
                raise errors.UnsupportedInputError(name, inputs.model or "?", list(inputs))
            target = resolved
            _check_datatype(name, value, inputs.datatypes[target])
        if target in body:
            raise errors.RequestValidationError(
                f"input {target!r} given twice (as {origin[target]!r} and {name!r})", field=name
            )
        body[target] = value
        origin[target] = name
    if stream is not None and "stream" not in body and (inputs is None or "stream" in inputs.datatypes):
        body["stream"] = stream
    if request.id is not None:
        body["id"] = request.id
    if request.parameters:
        for key in request.parameters:
            if key in body:
                raise errors.RequestValidationError(
                    f"{key!r} is both an input and a request parameter; Triton rejects duplicates",
                    field=f"parameters.{key}",
                )
        body["parameters"] = dict(request.parameters)
    return body


def _check_datatype(name: str, value: Any, datatype: str) -> None:
    """Reject values Triton would fail to parse (it answers 500 "Unable to parse 'data'")."""
    items = value if isinstance(value, list) else [value]
    expected = _DATATYPE_CHECKS.get(datatype)
    if expected is None and datatype.startswith(("INT", "UINT")):
        ok = all(isinstance(item, int) and not isinstance(item, bool) for item in items)
    elif expected is None:
        return
    elif bool not in expected:
        ok = all(isinstance(item, expected) and not isinstance(item, bool) for item in items)
    else:
        ok = all(isinstance(item, expected) for item in items)
    if not ok:
        raise errors.RequestValidationError(
            f"input {name!r} is {datatype} on this model; {value!r:.60} does not fit", field=name
        )


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
