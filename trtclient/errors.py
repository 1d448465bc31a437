"""Every error trtclient raises.

::

    TritonError                          root: ``except TritonError`` catches everything below
    ├── RequestValidationError           the request is invalid; nothing was sent (names the field)
    │   └── UnsupportedInputError        the model has no such input (Triton would silently ignore it)
    ├── TritonTransportError             the exchange failed below HTTP/gRPC semantics
    │   ├── TritonConnectionError        could not connect (refused, DNS, TLS handshake)
    │   ├── TritonDisconnectedError      the connection dropped after the request was sent
    │   └── TritonTimeoutError           a deadline passed; ``.phase`` says which one
    │       ├── ConnectTimeoutError      connecting took longer than ``Timeout.connect``
    │       ├── ReadTimeoutError         no byte arrived for ``Timeout.read`` seconds
    │       └── TotalTimeoutError        the whole request took longer than ``Timeout.total``
    ├── TritonStatusError                the server answered with an error status (``.status_code``)
    │   ├── BadRequestError              400: invalid input, unknown model, missing input
    │   ├── AccessDeniedError            401/403, or a gRPC restricted-protocol refusal
    │   ├── NotFoundError                404: model has no ready version, unknown path
    │   ├── InternalServerError          500: backend failure, wrong JSON type, bad body
    │   ├── NotSupportedError            501: e.g. /infer on a decoupled model
    │   └── ServiceUnavailableError      503: queue full, model version not ready
    ├── TritonResponseError              a 2xx answer that is not a success
    │   ├── TritonStreamError            an ``{"error": ...}`` event inside a 200 stream
    │   ├── ErrorBodyError               a 200 /generate body that is an error ("exactly 1 response")
    │   ├── EmptyStreamError             a 200 stream that ended without a single event
    │   ├── InvalidJSONError             the server sent something that is not the expected JSON
    │   └── MalformedStreamError         the event stream broke off in the middle of an event
    └── LauncherError                    starting or preparing a server failed
        ├── SetupError                   a prerequisite is missing (binary, python3.11, cache dir, template)
        ├── PortInUseError               a requested port is taken
        ├── ServerStartError             the server exited during start-up (exit code + log tail)
        └── ServerTimeoutError           the server did not become ready in time (log tail)

Messages carry Triton's own error text where there is one, and never a header value.
:func:`error_kind` (below) gives each failure a short stable name for load-test records.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Literal

__all__ = [
    "ERROR_KINDS",
    "QUEUE_FULL_MESSAGE",
    "AccessDeniedError",
    "BadRequestError",
    "ConnectTimeoutError",
    "EmptyStreamError",
    "ErrorBodyError",
    "InternalServerError",
    "InvalidJSONError",
    "LauncherError",
    "MalformedStreamError",
    "NotFoundError",
    "NotSupportedError",
    "PortInUseError",
    "ReadTimeoutError",
    "RequestValidationError",
    "ServerStartError",
    "ServerTimeoutError",
    "ServiceUnavailableError",
    "SetupError",
    "TimeoutPhase",
    "TotalTimeoutError",
    "TritonConnectionError",
    "TritonDisconnectedError",
    "TritonError",
    "TritonResponseError",
    "TritonStatusError",
    "TritonStreamError",
    "TritonTimeoutError",
    "TritonTransportError",
    "UnsupportedInputError",
    "error_kind",
]

TimeoutPhase = Literal["connect", "read", "total"]


class TritonError(Exception):
    """Root of every error raised by trtclient."""


# --- the request itself -------------------------------------------------------------------------


class RequestValidationError(TritonError, ValueError):
    """The request is invalid; it was not sent. ``field`` names the offending input when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnsupportedInputError(RequestValidationError):
    """The model has no input of this name; Triton would turn it into an ignored request parameter."""

    def __init__(self, field: str, model: str, accepted: list[str]) -> None:
        self.model = model
        self.accepted = accepted
        close = difflib.get_close_matches(field, accepted, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        names = ", ".join(accepted) if accepted else "(none listed)"
        super().__init__(
            f"model {model!r} has no input {field!r}: Triton would silently ignore it.{hint} "
            f"Inputs this model accepts: {names}",
            field=field,
        )


# --- transport ----------------------------------------------------------------------------------


class TritonTransportError(TritonError):
    """The exchange with the server failed below the protocol (socket, TLS, deadline)."""

    def __init__(self, message: str, *, url: str = "") -> None:
        self.url = url
        super().__init__(message)


class TritonConnectionError(TritonTransportError):
    """The client could not connect to the server; nothing reached it."""


class TritonDisconnectedError(TritonTransportError):
    """The connection dropped after the request was sent (server closed it, reset, truncated body)."""


class TritonTimeoutError(TritonTransportError):
    """A deadline passed. ``phase`` is ``"connect"``, ``"read"`` or ``"total"``."""

    phase: TimeoutPhase = "total"

    def __init__(self, message: str, *, url: str = "", timeout: float | None = None) -> None:
        self.timeout = timeout
        super().__init__(message, url=url)


class ConnectTimeoutError(TritonTimeoutError):
    """Connecting to the server took longer than the connect timeout."""

    phase: TimeoutPhase = "connect"


class ReadTimeoutError(TritonTimeoutError):
    """No byte arrived from the server within the read timeout."""

    phase: TimeoutPhase = "read"


class TotalTimeoutError(TritonTimeoutError):
    """The whole request, stream included, took longer than the total timeout."""

    phase: TimeoutPhase = "total"


# --- error statuses -----------------------------------------------------------------------------


class TritonStatusError(TritonError):
    """The server answered with an error status; ``message`` is Triton's own ``{"error": ...}`` text.

    ``retry_after`` holds a Retry-After header in seconds, when the server sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str = "",
        grpc_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.url = url
        self.grpc_code = grpc_code
        self.retry_after = retry_after
        where = f" from {url}" if url else ""
        status = f"gRPC {grpc_code}" if grpc_code else f"HTTP {status_code}"
        super().__init__(f"{status}{where}: {message}")


class BadRequestError(TritonStatusError):
    """400: Triton rejected the request (unknown model, missing or malformed input, backend refusal)."""


class AccessDeniedError(TritonStatusError):
    """401/403, or gRPC's restricted-protocol refusal: pass the header the server expects."""


class NotFoundError(TritonStatusError):
    """404: unknown path, or the model has no ready version."""


class InternalServerError(TritonStatusError):
    """500: the backend failed, or Triton could not parse the body (wrong JSON types)."""


class NotSupportedError(TritonStatusError):
    """501: the server does not support this call for this model."""


class ServiceUnavailableError(TritonStatusError):
    """503: the server is overloaded (queue full) or the model version is not ready."""


# --- a 2xx answer that is not a success ---------------------------------------------------------


class TritonResponseError(TritonError):
    """The server answered 2xx but the answer is an error or unusable."""

    def __init__(self, message: str, *, url: str = "", events_received: int = 0) -> None:
        self.url = url
        self.events_received = events_received
        super().__init__(message)


class TritonStreamError(TritonResponseError):
    """An ``{"error": ...}`` event arrived inside a stream whose status was already 200."""

    def __init__(self, message: str, *, url: str = "", events_received: int = 0) -> None:
        self.message = message
        super().__init__(
            f"error event after {events_received} event(s) of a streamed response: {message}",
            url=url,
            events_received=events_received,
        )


class ErrorBodyError(TritonResponseError):
    """A 200 ``/generate`` body carried ``{"error": ...}`` (e.g. the model sent several responses)."""

    def __init__(self, message: str, *, url: str = "") -> None:
        self.message = message
        hint = ""
        if "exactly 1 response" in message:
            hint = (
                " (use generate_stream() for streamed or multi-sequence requests: "
                "/generate only accepts models that answer once)"
            )
        super().__init__(f"the server answered 200 with an error: {message}{hint}", url=url)


class EmptyStreamError(TritonResponseError):
    """A stream answered 200 and ended without any event: not a success.

    Triton answers so when a required input is missing but an optional one makes up the input count.
    """


class InvalidJSONError(TritonResponseError):
    """The server sent a body or event that is not the JSON object expected."""


class MalformedStreamError(TritonResponseError):
    """The event stream ended in the middle of an event, or is not an event stream at all."""


# --- launcher -----------------------------------------------------------------------------------


class LauncherError(TritonError):
    """Preparing or starting a Triton server failed."""


class SetupError(LauncherError):
    """A prerequisite of the server is missing or unusable; the message says what to do."""


class PortInUseError(LauncherError):
    """A port the server was asked to use is already taken."""

    def __init__(self, port: int, address: str) -> None:
        self.port = port
        self.address = address
        super().__init__(
            f"port {port} on {address} is already in use; pick another one or omit the flag "
            "to let trtclient choose a free port"
        )


class ServerStartError(LauncherError):
    """The server process exited before it was ready."""

    def __init__(self, message: str, *, returncode: int | None, log_tail: str) -> None:
        self.returncode = returncode
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the server log ---\n{log_tail}".rstrip())


class ServerTimeoutError(LauncherError):
    """The server did not become ready before the deadline."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the server log ---\n{log_tail}".rstrip())


# failure kinds

#: Every value error_kind() returns, with its meaning.
ERROR_KINDS: dict[str, str] = {
    "invalid_request": "the request failed validation; nothing was sent",
    "unsupported_input": "the model has no such input; nothing was sent",
    "connect": "could not connect (refused, DNS, TLS)",
    "disconnect": "the connection dropped after the request was sent",
    "transport": "another transport failure",
    "timeout_connect": "connecting took longer than the connect timeout",
    "timeout_read": "no byte arrived within the read timeout",
    "timeout_total": "the whole request took longer than the total timeout",
    "queue_full": "Triton's queue was full ('Exceeds maximum queue size': 503 directly, 400 via an ensemble)",
    "http_<status>": "the server answered with this error status (http_400, http_404, http_500, http_503...)",
    "grpc_<code>": "the gRPC call failed with this status (grpc_invalid_argument, grpc_unavailable...)",
    "stream_error": "an error event arrived inside a 200 stream",
    "error_body": "a 200 /generate body carried an error",
    "empty_stream": "a 200 stream ended without any event",
    "invalid_json": "the server sent something that is not the expected JSON",
    "malformed_sse": "the event stream broke off in the middle of an event",
    "cancelled": "the caller cancelled the request",
    "launcher": "starting a server failed",
    "other": "anything else",
}


QUEUE_FULL_MESSAGE = "Exceeds maximum queue size"
"""Triton's words for a full scheduler queue: 503 from a model called directly, but 400 (in an SSE body)
through an ensemble, so the status alone does not say it."""


def error_kind(exc: BaseException) -> str:
    """A short, stable name of a failure's kind, for load-test records (see ERROR_KINDS)."""
    if isinstance(exc, TritonStatusError):
        if QUEUE_FULL_MESSAGE in exc.message:
            return "queue_full"
        if exc.grpc_code:
            return f"grpc_{exc.grpc_code.lower()}"
        return f"http_{exc.status_code}"
    if isinstance(exc, TritonTimeoutError):
        return f"timeout_{exc.phase}"
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "other"


_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (UnsupportedInputError, "unsupported_input"),
    (RequestValidationError, "invalid_request"),
    (TritonConnectionError, "connect"),
    (TritonDisconnectedError, "disconnect"),
    (TritonTransportError, "transport"),
    (TritonStreamError, "stream_error"),
    (ErrorBodyError, "error_body"),
    (EmptyStreamError, "empty_stream"),
    (InvalidJSONError, "invalid_json"),
    (MalformedStreamError, "malformed_sse"),
    (LauncherError, "launcher"),
    (asyncio.CancelledError, "cancelled"),
    (KeyboardInterrupt, "cancelled"),
    (TimeoutError, "timeout_total"),
)
