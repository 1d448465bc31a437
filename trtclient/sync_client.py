"""``TritonClient``: the same methods as :class:`~trtclient.client.AsyncTritonClient`, blocking.

For scripts, threads and gevent (Locust): HTTP through ``httpx.Client`` (safe to share between
threads and greenlets, :mod:`trtclient.transports.httpx_http`), gRPC through the blocking gRPC channel
(:mod:`trtclient.transports.grpc`). Options, validation and stream bookkeeping are
:mod:`trtclient._base`, shared with the async client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from trtclient import errors
from trtclient._base import BaseClient, BaseStream
from trtclient.inputs import ModelInputs, build_body, make_request
from trtclient.prometheus import Sample, parse_metrics
from trtclient.responses import response_error
from trtclient.schema import (
    GenerateRequest,
    GenerateResponse,
    ModelMetadata,
    ModelStats,
    RepositoryModel,
    ServerMetadata,
    StreamChunk,
)
from trtclient.streaming import TextMode, text_mode_from_config
from trtclient.timing import now_ns
from trtclient.transports.base import ChunkSource, SyncTransport
from trtclient.transports.httpx_http import HTTPTransport, make_httpx, map_error
from trtclient.urls import version_param

__all__ = ["GenerateStream", "TritonClient"]

T = TypeVar("T")


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
            from trtclient.transports.grpc import GRPCTransport

            self._impl = GRPCTransport.for_endpoint(endpoint)
        else:
            self._impl = HTTPTransport(endpoint, connections=self._connections)

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
            self._metrics_http = make_httpx(self._endpoint(), connections=2)
        try:
            response = self._metrics_http.get(url)
        except httpx.HTTPError as exc:
            raise map_error(exc, url) from exc
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
        body = self._new_attempt(inputs, client.text_mode)
        return impl.open_stream(self.model, body, inputs, self.head, self.state)
