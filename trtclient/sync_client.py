"""``TritonClient``: the same methods as :class:`~trtclient.client.AsyncTritonClient`, blocking.

For scripts, threads and gevent (Locust): HTTP through ``httpx.Client`` (safe to share between
threads and greenlets), gRPC through the blocking gRPC channel. Request building, SSE decoding,
error mapping and retry maths are the shared I/O-free core in :mod:`trtclient.protocol`; options,
validation and stream bookkeeping are :mod:`trtclient._base`, shared with the async client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx

from trtclient import errors
from trtclient._base import BaseClient, BaseStream, Closable, Endpoint
from trtclient.constants import USER_AGENT
from trtclient.inputs import ModelInputs, build_body, encode_body, make_request
from trtclient.options import JSON_HEADERS, safe_headers, ssl_option
from trtclient.prometheus import Sample, parse_metrics
from trtclient.responses import json_object, parse_generate_body, parse_json, repository_list, response_error
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
from trtclient.streaming import StreamState, TextMode, chunks_from_events, text_mode_from_config
from trtclient.timing import now_ns
from trtclient.urls import model_path, redact_url, stats_path, version_param

__all__ = ["GenerateStream", "TritonClient"]

T = TypeVar("T")


class ChunkSource(Closable, Protocol):
    """One open streamed response, as a blocking transport delivers it."""

    def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""


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


class TritonClient(BaseClient):
    """Blocking client of one Triton server; the constructor takes the same options as
    :class:`~trtclient.client.AsyncTritonClient`. Use it as a context manager or call ``close()``.
    """

    def _init_io(self) -> None:
        self._lock = threading.Lock()
        self._metrics_http: httpx.Client | None = None
        endpoint = self._endpoint()
        self._impl: SyncTransport
        if self.transport == "grpc":
            from trtclient.grpc_transport import GRPCTransport

            self._impl = GRPCTransport.for_endpoint(endpoint)
        else:
            self._impl = _HTTPTransport(endpoint, connections=self._connections)

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
        self._check_open()
        return self._impl

    # --- generate ---------------------------------------------------------------------------------

    def generate(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> GenerateResponse:
        """One request to ``/generate``; see :meth:`AsyncTritonClient.generate`."""
        request = make_request(prompt, inputs)
        name = model or self.model

        def send(attempt: int) -> GenerateResponse:
            model_inputs = self._inputs_for(name)
            body = build_body(request, model_inputs)
            return self._transport().generate(name, body, model_inputs)

        return self._retrying(send)

    def generate_stream(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> GenerateStream:
        """A streamed request; iterate it for :class:`StreamChunk` objects (see the async client)."""
        request = make_request(prompt, inputs)
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
                cached = self._inputs[name] = ModelInputs.from_metadata(metadata, mode)
        return cached

    def _retrying(self, attempt: Callable[[int], T]) -> T:
        """``attempt(0)``, then ``attempt(1)``... after a pause, while it fails in a way that is retried."""
        number = 0
        while True:
            try:
                return attempt(number)
            except errors.TritonError as exc:
                if not self._may_retry(number, exc):
                    raise
                time.sleep(self._retry_delay(number, exc))
                number += 1

    def _inputs_for(self, model: str) -> ModelInputs | None:
        return self.model_inputs(model) if self._reads_inputs else None

    def _detect_text_mode(self, impl: SyncTransport, model: str) -> TextMode:
        try:
            config = impl.model_config(model, None)
        except errors.TritonStatusError:
            return "delta"
        return text_mode_from_config(config)

    # --- the rest of the HTTP API -----------------------------------------------------------------

    def is_server_live(self) -> bool:
        """``GET /v2/health/live``: True when the server answers 200."""
        return self._transport().server_live()

    def is_server_ready(self) -> bool:
        """``GET /v2/health/ready``: True when every model is ready."""
        return self._transport().server_ready()

    def is_model_ready(self, model: str | None = None, version: str | int | None = None) -> bool:
        """``GET /v2/models/{model}/ready``: False for an unknown or unready model."""
        return self._transport().model_ready(model or self.model, version_param(version))

    def server_metadata(self) -> ServerMetadata:
        """``GET /v2``: name, version, extensions."""
        return ServerMetadata.model_validate(self._transport().server_metadata())

    def model_metadata(self, model: str | None = None, version: str | int | None = None) -> ModelMetadata:
        """``GET /v2/models/{model}``: platform, versions, inputs and outputs."""
        return ModelMetadata.model_validate(
            self._transport().model_metadata(model or self.model, version_param(version))
        )

    def model_config(self, model: str | None = None, version: str | int | None = None) -> dict[str, Any]:
        """``GET /v2/models/{model}/config``: the model configuration as JSON."""
        return self._transport().model_config(model or self.model, version_param(version))

    def repository_index(self, *, ready: bool = False) -> list[RepositoryModel]:
        """``POST /v2/repository/index``: every model in the repository with its state."""
        return [RepositoryModel.model_validate(item) for item in self._transport().repository_index(ready)]

    def model_statistics(
        self, model: str | None = None, version: str | int | None = None
    ) -> list[ModelStats]:
        """``GET /v2/models/{model}/stats``; ``model=""`` gives every model's statistics."""
        name = self.model if model is None else model
        data = self._transport().model_statistics(name, version_param(version))
        return [ModelStats.model_validate(item) for item in data.get("model_stats") or []]

    def metrics(self) -> list[Sample]:
        """``GET /metrics`` (Prometheus text, port 8002 by default) parsed into samples."""
        self._check_open()
        url = self.metrics_url
        if self._metrics_http is None:
            self._metrics_http = _make_httpx(self._endpoint(), connections=2)
        try:
            response = self._metrics_http.get(url)
        except httpx.HTTPError as exc:
            raise _map_error(exc, url) from exc
        if response.status_code != 200:
            raise response_error(response.status_code, response.content, url=url)
        return parse_metrics(response.text)


class GenerateStream(BaseStream[ChunkSource]):
    """A streamed response: an iterator of :class:`StreamChunk` and a context manager.

    The attributes mirror :class:`~trtclient.client.AsyncGenerateStream`; ``close()`` stops early.
    """

    def __init__(self, client: TritonClient, request: GenerateRequest, model: str) -> None:
        super().__init__(request, model)
        self._client = client
        self._ready: list[StreamChunk] = []

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
        self._stop()

    def __next__(self) -> StreamChunk:
        ready = self._ready
        if ready:
            return ready.pop()
        source = self._source
        if source is None:
            if self._done:
                raise StopIteration
            source = self._open()
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

    def _open(self) -> ChunkSource:
        self.start_ns = now_ns()
        try:
            source = self._source = self._client._retrying(self._send)
        except BaseException:
            self._done = True
            raise
        return source

    def _send(self, attempt: int) -> ChunkSource:
        self.attempts = attempt + 1
        client = self._client
        impl = client._transport()
        inputs = client._inputs_for(self.model)
        body = self._next_body(inputs, client.text_mode)
        source = impl.open_stream(self.model, body, inputs, self)
        self.state.url = self.url
        return source


# --- HTTP over httpx ------------------------------------------------------------------------------


def _make_httpx(endpoint: Endpoint, *, connections: int) -> httpx.Client:
    timeout = endpoint.timeout
    read = timeout.read
    if timeout.total is not None:
        read = timeout.total if read is None else min(read, timeout.total)
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, **endpoint.headers},
        timeout=httpx.Timeout(connect=timeout.connect, read=read, write=read, pool=None),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        verify=ssl_option(endpoint.verify, endpoint.cert),
        trust_env=False,
    )


def _map_error(exc: BaseException, url: str, *, timed_out_total: bool = False) -> errors.TritonError:
    """Translate an httpx failure into the trtclient exception tree."""
    shown = redact_url(url)
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


class _HTTPTransport:
    """Triton's HTTP/REST API over one ``httpx.Client``."""

    def __init__(self, endpoint: Endpoint, *, connections: int) -> None:
        self.url = endpoint.url
        self.total = endpoint.timeout.total
        self.http = _make_httpx(endpoint, connections=connections)

    def close(self) -> None:
        self.http.close()

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        url = self.url + path
        deadline = None if self.total is None else time.monotonic() + self.total
        try:
            response = self.http.request(method, url, content=body, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            late = deadline is not None and time.monotonic() >= deadline
            raise _map_error(exc, url, timed_out_total=late) from exc
        if response.status_code not in ok:
            raise response_error(
                response.status_code,
                response.content,
                url=url,
                retry_after=response.headers.get("Retry-After"),
            )
        return response

    def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        response = self._request(method, path, body)
        return parse_json(response.content, url=self.url + path)

    def _object(self, path: str) -> dict[str, Any]:
        return json_object(self._json("GET", path), url=self.url)

    def _probe(self, path: str) -> bool:
        return self._request("GET", path, ok=(200, 400, 404, 503)).status_code == 200

    def server_live(self) -> bool:
        return self._probe("/v2/health/live")

    def server_ready(self) -> bool:
        return self._probe("/v2/health/ready")

    def model_ready(self, model: str, version: str | None) -> bool:
        return self._probe(model_path(model, version) + "/ready")

    def server_metadata(self) -> dict[str, Any]:
        return self._object("/v2")

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(model_path(model, version))

    def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(model_path(model, version) + "/config")

    def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        body = encode_body({"ready": ready})
        return repository_list(self._json("POST", "/v2/repository/index", body), url=self.url)

    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(stats_path(model, version))

    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse:
        path = model_path(model) + "/generate"
        response = self._request("POST", path, encode_body(body))
        return parse_generate_body(response.content, url=self.url + path)

    def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: GenerateStream
    ) -> ChunkSource:
        url = self.url + model_path(model) + "/generate_stream"
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
            content=encode_body(body),
            headers=JSON_HEADERS,
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
        stream.response_headers = safe_headers(response.headers)
        if response.status_code != 200:
            try:
                payload = response.read()
            except httpx.HTTPError as exc:
                raise _map_error(exc, url) from exc
            finally:
                response.close()
            raise response_error(
                response.status_code, payload, url=url, retry_after=response.headers.get("Retry-After")
            )
        return _HttpxSource(response, stream.state, url, deadline)


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
        try:
            chunks, self._pending = chunks_from_events(self.state, self.decoder.feed(data, arrival))
        except errors.TritonError:
            self.close()
            raise
        return chunks

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()
