"""``TritonClient``: the same methods as :class:`~trtclient.client.AsyncTritonClient`, blocking.

For scripts, threads and gevent (Locust): HTTP through ``httpx.Client`` (safe to share between
threads and greenlets), gRPC through the blocking gRPC channel. Request building, SSE decoding,
error mapping and retry maths are the shared I/O-free core in :mod:`trtclient.protocol`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, Protocol

import httpx

from trtclient import errors, protocol
from trtclient.constants import DEFAULT_CONNECTIONS, DEFAULT_MODEL, USER_AGENT
from trtclient.prometheus import Sample, parse_metrics
from trtclient.protocol import DEFAULT_TIMEOUT, ModelInputs, RetryPolicy, StreamState, TextMode, Timeout
from trtclient.schema import (
    GenerateRequest,
    GenerateResponse,
    ModelMetadata,
    ModelStats,
    RepositoryModel,
    ServerMetadata,
    StreamChunk,
)
from trtclient.sse import SSEDecoder
from trtclient.timing import now_ns

__all__ = ["GenerateStream", "TritonClient"]

logger = logging.getLogger("trtclient")

Transport = Literal["http", "grpc"]


class ChunkSource(Protocol):
    """One open streamed response, as a blocking transport delivers it."""

    def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""

    def close(self) -> None:
        """Drop the connection or cancel the call (safe to call twice)."""


class SyncTransport(Protocol):
    """What the blocking client needs from a transport; HTTP and gRPC both provide it."""

    def server_live(self) -> bool: ...
    def server_ready(self) -> bool: ...
    def model_ready(self, model: str, version: str | None) -> bool: ...
    def server_metadata(self) -> dict[str, Any]: ...
    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]: ...
    def model_config(self, model: str, version: str | None) -> dict[str, Any]: ...
    def repository_index(self, ready: bool) -> list[dict[str, Any]]: ...
    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]: ...
    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse: ...
    def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: GenerateStream
    ) -> ChunkSource: ...
    def close(self) -> None: ...


class TritonClient:
    """Blocking client of one Triton server; the constructor takes the same options as
    :class:`~trtclient.client.AsyncTritonClient`. Use it as a context manager or call ``close()``.
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
        protocol.model_path(model)
        url, moved = protocol.move_credentials(url, protocol.check_headers(headers))
        self.url = protocol.normalize_url(url, transport=transport)
        self.model = model
        self.transport: Transport = transport
        self.timeout = Timeout.of(timeout)
        self.retry = (
            max_retries if isinstance(max_retries, RetryPolicy) else RetryPolicy(max_retries=max_retries)
        )
        self.metrics_url = metrics_url or protocol.metrics_url_for(self.url)
        self.check_inputs = check_inputs
        self.text_mode = text_mode
        self._headers = moved
        self._inputs: dict[str, ModelInputs] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._impl: SyncTransport
        if transport == "grpc":
            from trtclient.grpc_transport import GRPCTransport

            self._impl = GRPCTransport(
                self.url, timeout=self.timeout, headers=self._headers, verify=verify, cert=cert
            )
        else:
            self._impl = _HTTPTransport(
                self.url,
                timeout=self.timeout,
                headers=self._headers,
                verify=verify,
                cert=cert,
                connections=connections,
            )
        self._verify = verify
        self._cert = cert
        self._metrics_http: httpx.Client | None = None

    def __repr__(self) -> str:
        return (
            f"TritonClient(url={protocol.redact_url(self.url)!r}, model={self.model!r}, "
            f"transport={self.transport!r}, headers={sorted(self._headers)})"
        )

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; the client cannot be used afterwards."""
        self._closed = True
        self._impl.close()
        if self._metrics_http is not None:
            self._metrics_http.close()

    def _transport(self) -> SyncTransport:
        if self._closed:
            raise RuntimeError("this TritonClient is closed; create a new one")
        return self._impl

    # --- generate ---------------------------------------------------------------------------------

    def generate(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> GenerateResponse:
        """One request to ``/generate``; see :meth:`AsyncTritonClient.generate`."""
        request = protocol.make_request(prompt, inputs)
        name = model or self.model
        attempt = 0
        while True:
            try:
                model_inputs = self._inputs_for(name)
                body = protocol.build_body(request, model_inputs)
                return self._transport().generate(name, body, model_inputs)
            except errors.TritonError as exc:
                if attempt >= self.retry.max_retries or not protocol.should_retry(exc):
                    raise
                self._backoff(attempt, exc)
                attempt += 1

    def generate_stream(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> GenerateStream:
        """A streamed request; iterate it for :class:`StreamChunk` objects (see the async client)."""
        request = protocol.make_request(prompt, inputs)
        return GenerateStream(self, request, model or self.model)

    def model_inputs(self, model: str | None = None) -> ModelInputs:
        """The inputs the model accepts (read once from its metadata, then cached)."""
        name = model or self.model
        cached = self._inputs.get(name)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._inputs.get(name)
            if cached is None:
                impl = self._transport()
                metadata = impl.model_metadata(name, None)
                mode = self.text_mode or self._detect_text_mode(impl, name)
                cached = ModelInputs.from_metadata(metadata, mode)
                self._inputs[name] = cached
        return cached

    def _inputs_for(self, model: str) -> ModelInputs | None:
        if self.check_inputs or self.transport == "grpc":
            return self.model_inputs(model)
        return None

    def _detect_text_mode(self, impl: SyncTransport, model: str) -> TextMode:
        try:
            config = impl.model_config(model, None)
        except errors.TritonStatusError:
            return "delta"
        return protocol.text_mode_from_config(config)

    def _backoff(self, attempt: int, exc: BaseException) -> None:
        retry_after = exc.retry_after if isinstance(exc, errors.TritonStatusError) else None
        delay = protocol.retry_delay(attempt, self.retry, rand=random.random(), retry_after=retry_after)
        logger.info(
            "retrying in %.2f s after %s (retry %d of %d)", delay, exc, attempt + 1, self.retry.max_retries
        )
        time.sleep(delay)

    # --- the rest of the HTTP API -----------------------------------------------------------------

    def is_server_live(self) -> bool:
        """``GET /v2/health/live``: True when the server answers 200."""
        return self._transport().server_live()

    def is_server_ready(self) -> bool:
        """``GET /v2/health/ready``: True when every model is ready."""
        return self._transport().server_ready()

    def is_model_ready(self, model: str | None = None, version: str | int | None = None) -> bool:
        """``GET /v2/models/{model}/ready``: False for an unknown or unready model."""
        return self._transport().model_ready(model or self.model, _version(version))

    def server_metadata(self) -> ServerMetadata:
        """``GET /v2``: name, version, extensions."""
        return ServerMetadata.model_validate(self._transport().server_metadata())

    def model_metadata(self, model: str | None = None, version: str | int | None = None) -> ModelMetadata:
        """``GET /v2/models/{model}``: platform, versions, inputs and outputs."""
        return ModelMetadata.model_validate(
            self._transport().model_metadata(model or self.model, _version(version))
        )

    def model_config(self, model: str | None = None, version: str | int | None = None) -> dict[str, Any]:
        """``GET /v2/models/{model}/config``: the model configuration as JSON."""
        return self._transport().model_config(model or self.model, _version(version))

    def repository_index(self, *, ready: bool = False) -> list[RepositoryModel]:
        """``POST /v2/repository/index``: every model in the repository with its state."""
        return [RepositoryModel.model_validate(item) for item in self._transport().repository_index(ready)]

    def model_statistics(
        self, model: str | None = None, version: str | int | None = None
    ) -> list[ModelStats]:
        """``GET /v2/models/{model}/stats``; ``model=""`` gives every model's statistics."""
        name = self.model if model is None else model
        data = self._transport().model_statistics(name, _version(version))
        return [ModelStats.model_validate(item) for item in data.get("model_stats") or []]

    def metrics(self) -> list[Sample]:
        """``GET /metrics`` (Prometheus text, port 8002 by default) parsed into samples."""
        self._transport()
        url = self.metrics_url
        if self._metrics_http is None:
            self._metrics_http = _make_httpx(
                self.timeout, self._headers, self._verify, self._cert, connections=2
            )
        try:
            response = self._metrics_http.get(url)
        except httpx.HTTPError as exc:
            raise _map_error(exc, url) from exc
        if response.status_code != 200:
            raise protocol.status_error(
                response.status_code, protocol.error_message(response.content), url=url
            )
        return parse_metrics(response.text)


def _version(version: str | int | None) -> str | None:
    return None if version is None or version == "" else str(version)


class GenerateStream:
    """A streamed response: an iterator of :class:`StreamChunk` and a context manager.

    The attributes mirror :class:`~trtclient.client.AsyncGenerateStream`; ``close()`` stops early.
    """

    def __init__(self, client: TritonClient, request: GenerateRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.start_ns = 0
        self.sent_ns = 0
        self.headers_ns = 0
        self.status_code = 0
        self.response_headers: dict[str, str] = {}
        self.attempts = 0
        self.url = ""
        self.state = StreamState()
        self._client = client
        self._source: ChunkSource | None = None
        self._ready: list[StreamChunk] = []
        self._done = False

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

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __enter__(self) -> GenerateStream:
        if self._source is None and not self._done:
            self._open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving and close the connection (cancels the request on the server)."""
        self._done = True
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def __del__(self) -> None:
        source = self._source
        if source is not None:
            with contextlib.suppress(Exception):
                source.close()

    def __next__(self) -> StreamChunk:
        ready = self._ready
        if ready:
            return ready.pop()
        source = self._source
        if source is None:
            if self._done:
                raise StopIteration
            self._open()
            source = self._source
            assert source is not None
        while True:
            try:
                chunks = source.read()
            except BaseException:
                self.close()
                raise
            if chunks is None:
                self.close()
                raise StopIteration
            if chunks:
                if len(chunks) > 1:
                    ready.extend(reversed(chunks[1:]))
                return chunks[0]

    def _open(self) -> None:
        client = self._client
        self.start_ns = now_ns()
        attempt = 0
        while True:
            self.attempts = attempt + 1
            try:
                impl = client._transport()
                inputs = client._inputs_for(self.model)
                mode = inputs.text_mode if inputs is not None else (client.text_mode or "delta")
                body = protocol.build_body(self.request, inputs, stream=True)
                self.state = StreamState(mode)
                self._source = impl.open_stream(self.model, body, inputs, self)
                self.state.url = self.url
                return
            except errors.TritonError as exc:
                if attempt >= client.retry.max_retries or not protocol.should_retry(exc):
                    self._done = True
                    raise
                client._backoff(attempt, exc)
                attempt += 1
            except BaseException:
                self._done = True
                raise


# --- HTTP over httpx ------------------------------------------------------------------------------


def _make_httpx(
    timeout: Timeout,
    headers: Mapping[str, str],
    verify: bool | str | ssl.SSLContext,
    cert: str | tuple[str, str] | None,
    *,
    connections: int,
) -> httpx.Client:
    context: bool | ssl.SSLContext = (
        protocol.make_ssl_context(verify, cert) if (verify is not True or cert is not None) else True
    )
    read = timeout.read
    if timeout.total is not None:
        read = timeout.total if read is None else min(read, timeout.total)
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, **headers},
        timeout=httpx.Timeout(connect=timeout.connect, read=read, write=read, pool=None),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        verify=context,
        trust_env=False,
    )


def _map_error(exc: BaseException, url: str, *, timed_out_total: bool = False) -> errors.TritonError:
    """Translate an httpx failure into the trtclient exception tree."""
    shown = protocol.redact_url(url)
    if timed_out_total:
        return errors.TotalTimeoutError(f"request to {shown} exceeded the total timeout", url=shown)
    if isinstance(exc, httpx.ConnectTimeout):
        return errors.ConnectTimeoutError(f"connecting to {shown} timed out", url=shown)
    if isinstance(exc, httpx.TimeoutException):
        return errors.ReadTimeoutError(f"no data from {shown} within the read timeout", url=shown)
    if isinstance(exc, httpx.ConnectError):
        return errors.TritonConnectionError(f"cannot connect to {shown}: {exc}", url=shown)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return errors.TritonDisconnectedError(f"connection to {shown} dropped: {exc}", url=shown)
    return errors.TritonTransportError(f"request to {shown} failed: {exc!r}", url=shown)


_JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class _HTTPTransport:
    """Triton's HTTP/REST API over one ``httpx.Client``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: Timeout,
        headers: Mapping[str, str],
        verify: bool | str | ssl.SSLContext,
        cert: str | tuple[str, str] | None,
        connections: int,
    ) -> None:
        self.url = url
        self.total = timeout.total
        self.http = _make_httpx(timeout, headers, verify, cert, connections=connections)

    def close(self) -> None:
        self.http.close()

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        url = self.url + path
        deadline = None if self.total is None else time.monotonic() + self.total
        try:
            response = self.http.request(method, url, content=body, headers=_JSON_HEADERS)
        except httpx.HTTPError as exc:
            late = deadline is not None and time.monotonic() >= deadline
            raise _map_error(exc, url, timed_out_total=late) from exc
        if response.status_code not in ok:
            raise protocol.status_error(
                response.status_code,
                protocol.error_message(response.content),
                url=url,
                retry_after=protocol.parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        response = self._request(method, path, body)
        return protocol.parse_json(response.content, url=self.url + path)

    def _probe(self, path: str) -> bool:
        return self._request("GET", path, ok=(200, 400, 404, 503)).status_code == 200

    def server_live(self) -> bool:
        return self._probe("/v2/health/live")

    def server_ready(self) -> bool:
        return self._probe("/v2/health/ready")

    def model_ready(self, model: str, version: str | None) -> bool:
        return self._probe(protocol.model_path(model, version) + "/ready")

    def server_metadata(self) -> dict[str, Any]:
        return _object(self._json("GET", "/v2"), self.url)

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return _object(self._json("GET", protocol.model_path(model, version)), self.url)

    def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return _object(self._json("GET", protocol.model_path(model, version) + "/config"), self.url)

    def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        data = self._json("POST", "/v2/repository/index", protocol.encode_body({"ready": ready}))
        if not isinstance(data, list):
            raise errors.InvalidJSONError("the repository index is not a JSON list", url=self.url)
        return data

    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        path = (protocol.model_path(model, version) if model else "/v2/models") + "/stats"
        return _object(self._json("GET", path), self.url)

    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse:
        path = protocol.model_path(model) + "/generate"
        response = self._request("POST", path, protocol.encode_body(body))
        return protocol.parse_generate_body(response.content, url=self.url + path)

    def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: GenerateStream
    ) -> ChunkSource:
        url = self.url + protocol.model_path(model) + "/generate_stream"
        stream.url = url
        deadline = None if self.total is None else time.monotonic() + self.total
        # The trace hook must not refer to the stream: httpx keeps it alive with the connection, and
        # the stream has to be collectable for a consumer's early ``break`` to close that connection.
        sent = [0]

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "http11.send_request_headers.started":
                sent[0] = now_ns()

        request = self.http.build_request(
            "POST",
            url,
            content=protocol.encode_body(body),
            headers=_JSON_HEADERS,
            extensions={"trace": trace},
        )
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            late = deadline is not None and time.monotonic() >= deadline
            raise _map_error(exc, url, timed_out_total=late) from exc
        stream.headers_ns = now_ns()
        stream.sent_ns = sent[0]
        stream.status_code = response.status_code
        stream.response_headers = protocol.safe_headers(response.headers)
        if response.status_code != 200:
            try:
                payload = response.read()
            except httpx.HTTPError as exc:
                raise _map_error(exc, url) from exc
            finally:
                response.close()
            raise protocol.status_error(
                response.status_code,
                protocol.error_message(payload),
                url=url,
                retry_after=protocol.parse_retry_after(response.headers.get("Retry-After")),
            )
        return _HttpxSource(response, stream.state, url, deadline)


def _object(data: Any, url: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    return data


class _HttpxSource:
    """Reads one SSE body as it arrives: stamp each read, decode events, parse chunks."""

    def __init__(
        self, response: httpx.Response, state: StreamState, url: str, deadline: float | None
    ) -> None:
        self.response = response
        self.reads = response.iter_raw()
        self.decoder = SSEDecoder()
        self.state = state
        self.url = url
        self.deadline = deadline
        self._pending: errors.TritonError | None = None
        self._closed = False

    def read(self) -> list[StreamChunk] | None:
        if self._pending is not None:
            raise self._pending
        try:
            data = next(self.reads, b"")
        except httpx.HTTPError as exc:
            self.close()
            late = self.deadline is not None and time.monotonic() >= self.deadline
            raise _map_error(exc, self.url, timed_out_total=late) from exc
        arrival = now_ns()
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.close()
            raise errors.TotalTimeoutError(f"request to {self.url} exceeded the total timeout", url=self.url)
        if not data:
            self.state.finish(self.decoder.finish())
            self.close()
            return None
        chunks: list[StreamChunk] = []
        for event in self.decoder.feed(data, arrival):
            try:
                chunks.append(self.state.chunk_from_event(event))
            except errors.TritonError as exc:
                if not chunks:
                    self.close()
                    raise
                self._pending = exc
                break
        return chunks

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()
