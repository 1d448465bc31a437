"""Reading answers: JSON bodies, Triton's error text, status -> exception, a 200 ``/generate``
body, and Retry-After (``triton-protocol.md`` §1.4)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from trtclient import errors
from trtclient.schema import GenerateResponse
from trtclient.urls import redact_url

__all__ = [
    "error_message",
    "json_object",
    "parse_generate_body",
    "parse_json",
    "parse_retry_after",
    "repository_list",
    "response_error",
    "status_error",
    "status_error_class",
]


def parse_json(body: bytes | str, *, url: str = "", what: str = "response body") -> Any:
    """Parse JSON or raise :class:`~trtclient.errors.InvalidJSONError` quoting the start of it."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        preview = body[:120] if isinstance(body, bytes | str) else b""
        raise errors.InvalidJSONError(
            f"the server sent a {what} that is not valid JSON: {preview!r}", url=url
        ) from None


def json_object(data: Any, *, url: str = "") -> dict[str, Any]:
    """``data`` if it is a JSON object, else :class:`~trtclient.errors.InvalidJSONError`."""
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    return data


def repository_list(data: Any, *, url: str = "") -> list[dict[str, Any]]:
    """A repository index (a JSON list), else :class:`~trtclient.errors.InvalidJSONError`."""
    if not isinstance(data, list):
        raise errors.InvalidJSONError("the repository index is not a JSON list", url=url)
    return data


def error_message(body: bytes, content_type: str = "") -> str:
    """Triton's error text from an error body: ``{"error": ...}`` as JSON or as one SSE event."""
    text = body.strip()
    if text.startswith(b"data:"):
        text = text[5:].split(b"\n", 1)[0].strip()
    if text.startswith(b"{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
    decoded = text.decode("utf-8", "replace")
    return decoded[:500] if decoded else "(empty body)"


_STATUS_CLASSES: dict[int, type[errors.TritonStatusError]] = {
    400: errors.BadRequestError,
    401: errors.AccessDeniedError,
    403: errors.AccessDeniedError,
    404: errors.NotFoundError,
    500: errors.InternalServerError,
    501: errors.NotSupportedError,
    503: errors.ServiceUnavailableError,
}


def status_error(
    status: int, message: str, *, url: str = "", retry_after: float | None = None
) -> errors.TritonStatusError:
    """The exception for an error status (Triton's mapping: ``triton-protocol.md`` §1.4)."""
    cls = _STATUS_CLASSES.get(status, errors.TritonStatusError)
    if cls is errors.AccessDeniedError and "header" not in message:
        message += " (pass the header the server expects with headers=...)"
    return cls(message, status_code=status, url=_shown_url(url), retry_after=retry_after)


def response_error(
    status: int, body: bytes, *, url: str = "", retry_after: str | None = None
) -> errors.TritonStatusError:
    """The exception for an HTTP error answer: its status, the message in its body, and its
    ``Retry-After`` header (``retry_after``, as sent)."""
    return status_error(status, error_message(body), url=url, retry_after=parse_retry_after(retry_after))


def status_error_class(status: int) -> type[errors.TritonStatusError]:
    """The exception class for an error status."""
    return _STATUS_CLASSES.get(status, errors.TritonStatusError)


def _shown_url(url: str) -> str:
    """The URL as shown in messages (credentials removed)."""
    return redact_url(url) if url else url


def parse_generate_body(body: bytes, *, url: str = "") -> GenerateResponse:
    """Parse a 200 ``/generate`` body; an ``{"error": ...}`` body raises ErrorBodyError."""
    if not body.strip():
        raise errors.InvalidJSONError("the server answered 200 with an empty body", url=url)
    data = parse_json(body, url=url)
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    if "error" in data:
        raise errors.ErrorBodyError(str(data["error"]), url=url)
    try:
        return GenerateResponse.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidJSONError(
            f"unexpected response fields: {exc.errors()[0]['msg']}", url=url
        ) from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as a number; None otherwise."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
