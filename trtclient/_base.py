"""The I/O-free half of both clients: options, validation, retry decisions and what a stream records.

:class:`~trtclient.client.AsyncTritonClient` and :class:`~trtclient.sync_client.TritonClient` (and
their streams) inherit it and write only their I/O path, one with ``await`` and one without; nothing
here sends a request, reads a socket or sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

from trtclient import errors
from trtclient.constants import DEFAULT_CONNECTIONS, DEFAULT_MODEL
from trtclient.inputs import ModelInputs, build_body
from trtclient.options import DEFAULT_TIMEOUT, Timeout, check_headers
from trtclient.retry import RetryPolicy, retry_delay, should_retry
from trtclient.schema import GenerateRequest
from trtclient.streaming import ArrivalClock, StreamHead, StreamState, TextMode
from trtclient.transports.base import Closable, Endpoint
from trtclient.urls import metrics_url_for, model_path, move_credentials, normalize_url, redact_url

__all__ = ["BaseClient", "BaseStream", "Transport"]

logger = logging.getLogger("trtclient")

Transport = Literal["http", "grpc"]


class BaseClient:
    """Options and validation of a client of one Triton server, and its decisions that need no I/O.

    The constructor checks every option and keeps them; :meth:`_init_io` (the subclass's) then sets up
    the I/O side.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = DEFAULT_MODEL,
        transport: Transport = "http",
        timeout: Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        verify: bool | str | ssl.SSLContext = True,
        cert: str | tuple[str, str] | None = None,
        max_retries: int | RetryPolicy = 0,
        connections: int = DEFAULT_CONNECTIONS,
        metrics_url: str | None = None,
        check_inputs: bool = True,
        text_mode: TextMode | None = None,
    ) -> None:
        if transport not in ("http", "grpc"):
            raise errors.RequestValidationError(f"transport must be 'http' or 'grpc', not {transport!r}")
        if text_mode not in (None, "delta", "cumulative"):
            raise errors.RequestValidationError(
                f"text_mode must be 'delta' or 'cumulative', not {text_mode!r}"
            )
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise errors.RequestValidationError(f"connections must be an int >= 1, not {connections!r}")
        model_path(model)
        url, moved = move_credentials(url, check_headers(headers))
        self.url = normalize_url(url, transport=transport)
        self.model = model
        self.transport: Transport = transport
        self.timeout = Timeout.of(timeout)
        self.retry = (
            max_retries if isinstance(max_retries, RetryPolicy) else RetryPolicy(max_retries=max_retries)
        )
        self.metrics_url = metrics_url or metrics_url_for(self.url)
        self.check_inputs = check_inputs
        self.text_mode = text_mode
        self._headers = moved
        self._verify = verify
        self._cert = cert
        self._connections = connections
        self._inputs: dict[str, ModelInputs] = {}
        self._closed = False
        self._init_io()

    def _init_io(self) -> None:
        """Set up the I/O side (locks, pools, the transport); called last by the constructor."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={redact_url(self.url)!r}, model={self.model!r}, "
            f"transport={self.transport!r}, headers={sorted(self._headers)})"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")

    def _endpoint(self) -> Endpoint:
        return Endpoint(self.url, self.timeout, self._headers, self._verify, self._cert)

    @property
    def _reads_inputs(self) -> bool:
        """Whether requests are built from the model's metadata (gRPC always needs its datatypes)."""
        return self.check_inputs or self.transport == "grpc"

    def _may_retry(self, attempt: int, exc: errors.TritonError) -> bool:
        """Whether failed attempt ``attempt`` (0-based) is retried: opt-in, and only before any event."""
        return attempt < self.retry.max_retries and should_retry(exc)

    def _retry_delay(self, attempt: int, exc: errors.TritonError) -> float:
        """Seconds to wait before the next attempt (the server's ``Retry-After`` when it sent one)."""
        retry_after = exc.retry_after if isinstance(exc, errors.TritonStatusError) else None
        delay = retry_delay(attempt, self.retry, rand=random.random(), retry_after=retry_after)
        logger.info(
            "retrying in %.2f s after %s (retry %d of %d)", delay, exc, attempt + 1, self.retry.max_retries
        )
        return delay


SourceT = TypeVar("SourceT", bound=Closable)


class BaseStream(Generic[SourceT]):
    """What a streamed response records as it progresses; reading its source is the subclass's part."""

    def __init__(self, request: GenerateRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.start_ns = 0
        self.attempts = 0
        self.head = StreamHead()
        self.state = StreamState()
        self._source: SourceT | None = None
        self._done = False

    @property
    def url(self) -> str:
        """Where the latest attempt was sent."""
        return self.head.url

    @property
    def sent_ns(self) -> int:
        """``now_ns()`` when the request started going out (0: never sent)."""
        return self.head.sent_ns

    @property
    def headers_ns(self) -> int:
        """``now_ns()`` when the response headers arrived (0: not yet)."""
        return self.head.headers_ns

    @property
    def status_code(self) -> int:
        """The response's HTTP status (0: no response yet; 200 for gRPC)."""
        return self.head.status_code

    @property
    def response_headers(self) -> dict[str, str]:
        """The response headers, credentials redacted."""
        return self.head.headers

    @property
    def arrival_clock(self) -> ArrivalClock:
        """``"kernel"`` when event arrivals are the kernel's receive times, else ``"read"``."""
        return self.head.arrival_clock

    @property
    def events(self) -> int:
        """Chunks received so far."""
        return self.state.count

    @property
    def text(self) -> str:
        """The full text of sequence 0 so far."""
        return self.state.text(0)

    @property
    def first_arrival_ns(self) -> int:
        """``now_ns()`` when the first event's first byte arrived (0 before it did)."""
        return self.state.first_arrival_ns

    @property
    def last_arrival_ns(self) -> int:
        """``now_ns()`` when the latest event's first byte arrived."""
        return self.state.last_arrival_ns

    @property
    def closed(self) -> bool:
        """True once the stream ended or was closed."""
        return self._done

    def _stop(self) -> None:
        """Mark the stream ended and close its connection, if one is open."""
        self._done = True
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def __del__(self) -> None:
        # A consumer that breaks out of its loop drops its last reference here: close the
        # connection so the server stops generating. The event loop may already be gone at exit.
        source = self._source
        if source is not None:
            with contextlib.suppress(Exception):
                source.close()

    def _new_attempt(self, inputs: ModelInputs | None, text_mode: TextMode | None) -> dict[str, Any]:
        """Start the next attempt: the head cleared, a fresh state (in the model's text mode); returns its
        body. The stream keeps one head for its life, so a reader given it before the call sees the end."""
        mode = inputs.text_mode if inputs is not None else (text_mode or "delta")
        body = build_body(self.request, inputs, stream=True)
        self.head.clear()
        self.state = StreamState(mode)
        return body
