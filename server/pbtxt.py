"""A small reader of Triton's ``config.pbtxt`` (protobuf text format) into plain dictionaries.

Enough to read what the launcher checks in a user's model repository — model name, platform, backend,
max_batch_size, decoupled mode, every tensor's name, data type, dims and optional flag, ensemble steps
with their input and output maps — without the protobuf schema (``tritonclient`` is an optional extra).
Every field maps to a list of values, since any field may repeat; a message is a dict of the same kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["PbtxtError", "Tensor", "first", "parse_pbtxt", "tensors"]

Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<punct>[{}<>\[\]:,;])
    | (?P<word>[^\s{}<>\[\]:,;"'\#]+)
    """,
    re.VERBOSE,
)
_CLOSE = {"{": "}", "<": ">"}


class PbtxtError(ValueError):
    """The text is not protobuf text format this reader understands."""


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise PbtxtError(f"unexpected character {text[position]!r} on line {line}")
        position = match.end()
        if match.lastgroup != "space":
            out.append(match.group())
    return out


class _Reader:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise PbtxtError("unexpected end of text")
        self.at += 1
        return token

    def message(self, end: str | None) -> Message:
        fields: Message = {}
        while True:
            token = self.peek()
            if token is None:
                if end is not None:
                    raise PbtxtError(f"missing {end!r}")
                return fields
            if token == end:
                self.at += 1
                return fields
            if token in (",", ";"):
                self.at += 1
                continue
            name = self.take()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
                raise PbtxtError(f"expected a field name, got {name!r}")
            if self.peek() == ":":
                self.at += 1
            fields.setdefault(name, []).extend(self.values())

    def values(self) -> list[Any]:
        token = self.peek()
        if token == "[":
            self.at += 1
            items: list[Any] = []
            while self.peek() != "]":
                if self.peek() == ",":
                    self.at += 1
                    continue
                items.extend(self.values())
            self.at += 1
            return items
        return [self.value()]

    def value(self) -> Any:
        token = self.take()
        if token in _CLOSE:
            return self.message(_CLOSE[token])
        if token[0] in "\"'":
            text = token[1:-1]
            while self.peek() is not None and str(self.peek())[0] in "\"'":  # adjacent strings join
                text += self.take()[1:-1]
            return text
        try:
            return int(token)
        except ValueError:
            pass
        try:
            return float(token)
        except ValueError:
            return token  # an enum name or true/false


def parse_pbtxt(text: str) -> Message:
    """Parse protobuf text format into ``{field: [values...]}``; raises :class:`PbtxtError`."""
    return _Reader(_tokens(text)).message(None)


def first(message: Message, name: str, default: Any = None) -> Any:
    """The first value of a field, or ``default``."""
    values = message.get(name)
    return values[0] if values else default


@dataclass(frozen=True)
class Tensor:
    """One input or output declaration of a model config."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool
    reshape: tuple[int, ...] | None = None
    allow_ragged_batch: bool = False

    def to_pbtxt(self, kind: str) -> str:
        """This tensor as a ``kind { ... }`` block (``kind`` is ``input`` or ``output``)."""
        parts = [f'name: "{self.name}"', f"data_type: {self.data_type}", f"dims: {list(self.dims)}"]
        if self.reshape is not None:
            parts.append(f"reshape: {{ shape: {list(self.reshape)} }}")
        if self.allow_ragged_batch:
            parts.append("allow_ragged_batch: true")
        if self.optional and kind == "input":
            parts.append("optional: true")
        return f"{kind} {{ {' '.join(parts)} }}"


def tensors(config: Message, kind: str) -> dict[str, Tensor]:
    """The ``input`` or ``output`` declarations of a parsed config, by name."""
    found: dict[str, Tensor] = {}
    for item in config.get(kind, []):
        if not isinstance(item, dict):
            continue
        reshape = first(item, "reshape")
        found[str(first(item, "name", ""))] = Tensor(
            name=str(first(item, "name", "")),
            data_type=str(first(item, "data_type", "")),
            dims=tuple(int(d) for d in item.get("dims", [])),
            optional=str(first(item, "optional", "false")).lower() == "true",
            reshape=tuple(int(d) for d in reshape.get("shape", [])) if isinstance(reshape, dict) else None,
            allow_ragged_batch=str(first(item, "allow_ragged_batch", "false")).lower() == "true",
        )
    return found
