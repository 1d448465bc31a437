"""The exception tree: shape as drawn in errors.py, messages, and what they never contain."""

from __future__ import annotations

import re

import pytest

from trtclient import errors


def drawn_tree() -> list[tuple[int, str]]:
    """(depth, class name) of every line of the tree drawn in the module docstring."""
    assert errors.__doc__ is not None
    lines = []
    root = -1
    for line in errors.__doc__.splitlines():
        match = re.match(r"^\s{4}[\s│├└─]*([A-Z]\w+Error)\s", line)
        if match:
            column = match.start(1)
            root = column if root < 0 else root
            lines.append(((column - root) // 4, match.group(1)))
    return lines


def test_the_drawing_matches_the_classes() -> None:
    tree = drawn_tree()
    assert tree[0] == (0, "TritonError")
    parents: dict[int, str] = {}
    for depth, name in tree:
        cls = getattr(errors, name)
        parents[depth] = name
        if depth:
            parent = getattr(errors, parents[depth - 1])
            assert cls.__bases__[0] is parent, f"{name} should derive from {parents[depth - 1]}"
    drawn = {name for _, name in tree}
    defined = {name for name in errors.__all__ if isinstance(getattr(errors, name), type)}
    assert drawn == defined


def test_everything_is_a_triton_error_and_validation_is_also_a_value_error() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, errors.TritonError)
    assert issubclass(errors.RequestValidationError, ValueError)


def test_status_errors_carry_tritons_message_and_the_status() -> None:
    error = errors.BadRequestError(
        "Request for unknown model: 'x' is not found", status_code=400, url="http://h/x"
    )
    assert error.status_code == 400
    assert error.message == "Request for unknown model: 'x' is not found"
    assert str(error) == "HTTP 400 from http://h/x: Request for unknown model: 'x' is not found"
    grpc = errors.NotFoundError("no model", status_code=404, grpc_code="NOT_FOUND")
    assert str(grpc) == "gRPC NOT_FOUND: no model"


def test_timeout_phases() -> None:
    assert errors.ConnectTimeoutError("x").phase == "connect"
    assert errors.ReadTimeoutError("x").phase == "read"
    assert errors.TotalTimeoutError("x").phase == "total"


def test_stream_error_says_how_far_the_stream_got() -> None:
    error = errors.TritonStreamError("Executor failed", events_received=7)
    assert "after 7 event(s)" in str(error)
    assert error.message == "Executor failed"


def test_error_body_points_to_generate_stream_only_when_relevant() -> None:
    assert "generate_stream()" in str(
        errors.ErrorBodyError("generate expects model to produce exactly 1 response")
    )
    assert "generate_stream()" not in str(errors.ErrorBodyError("something else"))


@pytest.mark.parametrize(
    ("field", "suggestion"), [("max_token", "max_tokens"), ("temprature", "temperature")]
)
def test_unsupported_input_suggests_the_closest_name(field: str, suggestion: str) -> None:
    error = errors.UnsupportedInputError(field, "ensemble", ["max_tokens", "temperature", "text_input"])
    assert f"Did you mean {suggestion!r}" in str(error)
    assert error.field == field and error.model == "ensemble"


def test_launcher_errors_are_unchanged() -> None:
    error = errors.PortInUseError(8000, "127.0.0.1")
    assert "port 8000 on 127.0.0.1 is already in use" in str(error)
    start = errors.ServerStartError("exited", returncode=1, log_tail="boom")
    assert start.returncode == 1 and str(start).endswith("boom")
